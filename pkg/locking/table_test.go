package locking

import (
	"fmt"
	"math"
	"slices"
	"testing"
)

var (
	ownA  = Owner{Caller: "hostA", Svid: 1, OH: "1@hostA"}
	ownA2 = Owner{Caller: "hostA", Svid: 2, OH: "2@hostA"}
	ownB  = Owner{Caller: "hostB", Svid: 1, OH: "1@hostB"}
	ownC  = Owner{Caller: "hostC", Svid: 7, OH: "7@hostC"}
)

func rg(s, e uint64) Range { return Range{s, e} }

// locksOf lists f's held locks as "owner:mode[start,end]" strings.
func locksOf(t *Table, file string) []string {
	var out []string
	for _, e := range t.List("", "") {
		if e.File != file || e.Kind != KindLock {
			continue
		}
		m := "sh"
		if e.Exclusive {
			m = "ex"
		}
		end := fmt.Sprint(e.Range.End)
		if e.Range.End == ToEOF {
			end = "EOF"
		}
		out = append(out, fmt.Sprintf("%s/%d:%s[%d,%s]", e.Owner.Caller, e.Owner.Svid, m, e.Range.Start, end))
	}
	return out
}

func lockOK(t *testing.T, tb *Table, o Owner, excl bool, r Range) {
	t.Helper()
	if res := tb.Lock(LockRequest{File: "f", Volume: "v", Owner: o, Exclusive: excl, Range: r}); res.Status != StatGranted {
		t.Fatalf("lock %v %v %v: %v", o, excl, r, res.Status)
	}
}

func TestRangeOf(t *testing.T) {
	cases := []struct {
		off, len uint64
		want     Range
		ok       bool
	}{
		{0, 0, WholeFile, true},
		{10, 0, Range{10, ToEOF}, true},
		{0, 1, Range{0, 0}, true},
		{5, 10, Range{5, 14}, true},
		{math.MaxUint64, 1, Range{math.MaxUint64, math.MaxUint64}, true},
		{math.MaxUint64, 2, Range{}, false},
		{1, math.MaxUint64, Range{1, math.MaxUint64}, true},
		{2, math.MaxUint64, Range{}, false},
		{0, math.MaxUint64, Range{0, math.MaxUint64 - 1}, true},
		{1 << 63, 1 << 63, Range{1 << 63, math.MaxUint64}, true},
		{1<<63 + 1, 1 << 63, Range{}, false},
	}
	for _, c := range cases {
		got, ok := RangeOf(c.off, c.len)
		if ok != c.ok || (ok && got != c.want) {
			t.Errorf("RangeOf(%d,%d) = %v,%v want %v,%v", c.off, c.len, got, ok, c.want, c.ok)
		}
	}
	if WholeFile.Len() != 0 || (Range{5, 14}).Len() != 10 || (Range{0, math.MaxUint64 - 1}).Len() != math.MaxUint64 {
		t.Error("Len")
	}
}

func TestSplitMergeUpgradeDowngrade(t *testing.T) {
	steps := []struct {
		name   string
		op     func(tb *Table) Status
		want   Status
		expect []string
	}{
		{"shared 0-99", func(tb *Table) Status {
			return tb.Lock(LockRequest{File: "f", Owner: ownA, Range: rg(0, 99)}).Status
		}, StatGranted, []string{"hostA/1:sh[0,99]"}},
		{"adjacent shared merges", func(tb *Table) Status {
			return tb.Lock(LockRequest{File: "f", Owner: ownA, Range: rg(100, 199)}).Status
		}, StatGranted, []string{"hostA/1:sh[0,199]"}},
		{"upgrade middle splits", func(tb *Table) Status {
			return tb.Lock(LockRequest{File: "f", Owner: ownA, Exclusive: true, Range: rg(50, 59)}).Status
		}, StatGranted, []string{"hostA/1:sh[0,49]", "hostA/1:ex[50,59]", "hostA/1:sh[60,199]"}},
		{"unlock middle of exclusive", func(tb *Table) Status { return tb.Unlock("f", ownA, rg(54, 55)) },
			StatGranted, []string{"hostA/1:sh[0,49]", "hostA/1:ex[50,53]", "hostA/1:ex[56,59]", "hostA/1:sh[60,199]"}},
		{"downgrade rejoins", func(tb *Table) Status {
			return tb.Lock(LockRequest{File: "f", Owner: ownA, Range: rg(50, 59)}).Status
		}, StatGranted, []string{"hostA/1:sh[0,199]"}},
		{"other owner shared ok", func(tb *Table) Status {
			return tb.Lock(LockRequest{File: "f", Owner: ownB, Range: rg(150, 250)}).Status
		}, StatGranted, []string{"hostA/1:sh[0,199]", "hostB/1:sh[150,250]"}},
		{"other owner exclusive denied", func(tb *Table) Status {
			return tb.Lock(LockRequest{File: "f", Owner: ownB, Exclusive: true, Range: rg(199, 199)}).Status
		}, StatDenied, []string{"hostA/1:sh[0,199]", "hostB/1:sh[150,250]"}},
		{"upgrade blocked by other shared", func(tb *Table) Status {
			return tb.Lock(LockRequest{File: "f", Owner: ownA, Exclusive: true, Range: rg(0, 199)}).Status
		}, StatDenied, []string{"hostA/1:sh[0,199]", "hostB/1:sh[150,250]"}},
		{"same host other pid conflicts", func(tb *Table) Status {
			return tb.Lock(LockRequest{File: "f", Owner: ownA2, Exclusive: true, Range: rg(0, 0)}).Status
		}, StatDenied, nil},
		{"to-EOF exclusive past both", func(tb *Table) Status {
			return tb.Lock(LockRequest{File: "f", Owner: ownC, Exclusive: true, Range: rg(251, ToEOF)}).Status
		}, StatGranted, []string{"hostA/1:sh[0,199]", "hostB/1:sh[150,250]", "hostC/7:ex[251,EOF]"}},
		{"unlock unheld succeeds", func(tb *Table) Status { return tb.Unlock("f", ownC, rg(0, 10)) },
			StatGranted, nil},
		{"unlock of unknown file succeeds", func(tb *Table) Status { return tb.Unlock("nofile", ownC, WholeFile) },
			StatGranted, nil},
		{"whole-file unlock", func(tb *Table) Status { return tb.Unlock("f", ownA, WholeFile) },
			StatGranted, []string{"hostB/1:sh[150,250]", "hostC/7:ex[251,EOF]"}},
		{"last byte", func(tb *Table) Status {
			return tb.Unlock("f", ownC, rg(ToEOF, ToEOF))
		}, StatGranted, []string{"hostB/1:sh[150,250]", "hostC/7:ex[251,18446744073709551614]"}},
		{"extend to EOF merges", func(tb *Table) Status {
			return tb.Lock(LockRequest{File: "f", Owner: ownC, Exclusive: true, Range: rg(300, ToEOF)}).Status
		}, StatGranted, []string{"hostB/1:sh[150,250]", "hostC/7:ex[251,EOF]"}},
	}
	tb := NewTable(Limits{}, nil)
	for _, s := range steps {
		if got := s.op(tb); got != s.want {
			t.Fatalf("%s: status %v, want %v", s.name, got, s.want)
		}
		if s.expect != nil {
			if got := locksOf(tb, "f"); !slices.Equal(got, s.expect) {
				t.Fatalf("%s: locks %v, want %v", s.name, got, s.expect)
			}
		}
	}
}

func TestTestReportsHolder(t *testing.T) {
	tb := NewTable(Limits{}, nil)
	lockOK(t, tb, ownA, true, rg(10, 19))
	lockOK(t, tb, ownB, false, rg(30, ToEOF))
	if h := tb.Test("f", ownA, true, rg(0, 100)); h == nil || h.Owner != ownB || h.Exclusive || h.Range != rg(30, ToEOF) {
		t.Fatalf("test: %+v", h)
	}
	if h := tb.Test("f", ownB, false, rg(0, 15)); h == nil || h.Owner != ownA || !h.Exclusive || h.Range != rg(10, 19) {
		t.Fatalf("test: %+v", h)
	}
	if h := tb.Test("f", ownC, false, rg(40, 50)); h != nil {
		t.Fatalf("shared over shared: %+v", h)
	}
	if h := tb.Test("f", ownA, true, rg(10, 19)); h != nil {
		t.Fatalf("own lock conflicts: %+v", h)
	}
	if h := tb.Test("other", ownC, true, WholeFile); h != nil {
		t.Fatal("unknown file")
	}
	if res := tb.Lock(LockRequest{File: "f", Owner: ownC, Exclusive: true, Range: rg(19, 19)}); res.Status != StatDenied || res.Conflict.Owner != ownA {
		t.Fatalf("lock: %+v", res)
	}
}

func TestBlockingFIFOAndGrant(t *testing.T) {
	var granted []*Waiter
	tb := NewTable(Limits{}, func(w *Waiter) { granted = append(granted, w) })
	lockOK(t, tb, ownA, true, WholeFile)
	for i, o := range []Owner{ownB, ownC, ownA2} {
		res := tb.Lock(LockRequest{File: "f", Owner: o, Exclusive: true, Range: rg(0, 9), Block: true, Data: i})
		if res.Status != StatBlocked || res.Conflict == nil || res.Conflict.Owner != ownA {
			t.Fatalf("waiter %d: %+v", i, res)
		}
	}
	// A repeat does not queue twice; its data is refreshed.
	if res := tb.Lock(LockRequest{File: "f", Owner: ownB, Exclusive: true, Range: rg(0, 9), Block: true, Data: 9}); res.Status != StatBlocked {
		t.Fatal(res)
	}
	if _, w := tb.Counts(); w != 3 {
		t.Fatalf("%d waiters", w)
	}
	if tb.Unlock("f", ownA, WholeFile) != StatGranted {
		t.Fatal("unlock")
	}
	if len(granted) != 1 || granted[0].Owner != ownB || granted[0].Data != 9 {
		t.Fatalf("granted %+v", granted)
	}
	if !tb.IsProvisional(granted[0]) {
		t.Fatal("grant should be provisional")
	}
	tb.Confirm(granted[0])
	if tb.IsProvisional(granted[0]) {
		t.Fatal("confirmed grant still provisional")
	}
	// Cancel C's request: A2 is next.
	if tb.Cancel("f", ownC, true, rg(0, 9)) != StatGranted {
		t.Fatal("cancel")
	}
	if tb.Cancel("f", ownC, true, rg(0, 9)) != StatDenied {
		t.Fatal("cancel of nothing must be denied")
	}
	if tb.Cancel("f", ownA2, false, rg(0, 9)) != StatDenied {
		t.Fatal("cancel must match exclusive too")
	}
	granted = nil
	tb.Unlock("f", ownB, WholeFile)
	if len(granted) != 1 || granted[0].Owner != ownA2 {
		t.Fatalf("granted %+v", granted)
	}
	// A2's grant is revoked (nobody accepted it): the lock goes.
	if !tb.Revoke(granted[0]) || tb.Revoke(granted[0]) {
		t.Fatal("revoke")
	}
	if l, w := tb.Counts(); l != 0 || w != 0 || len(tb.Clients()) != 0 {
		t.Fatalf("left %d locks %d waiters clients %v", l, w, tb.Clients())
	}
}

func TestSharedWaitersGrantedTogether(t *testing.T) {
	var granted []*Waiter
	tb := NewTable(Limits{}, func(w *Waiter) { granted = append(granted, w) })
	lockOK(t, tb, ownA, true, rg(0, 99))
	tb.Lock(LockRequest{File: "f", Owner: ownB, Range: rg(0, 9), Block: true})
	tb.Lock(LockRequest{File: "f", Owner: ownC, Exclusive: true, Range: rg(5, 5), Block: true})
	tb.Lock(LockRequest{File: "f", Owner: ownA2, Range: rg(50, 60), Block: true})
	// Downgrading A's lock lets both shared waiters in, not the writer.
	lockOK(t, tb, ownA, false, rg(0, 99))
	if len(granted) != 2 || granted[0].Owner != ownB || granted[1].Owner != ownA2 {
		t.Fatalf("granted %+v", granted)
	}
	granted = nil
	tb.Unlock("f", ownA, WholeFile)
	if len(granted) != 0 {
		t.Fatal("writer granted while B reads")
	}
	tb.Unlock("f", ownB, WholeFile)
	if len(granted) != 1 || granted[0].Owner != ownC {
		t.Fatalf("granted %+v", granted)
	}
}

func TestRepeatConfirmsProvisionalAndUnlockCancelsWaiter(t *testing.T) {
	var granted []*Waiter
	tb := NewTable(Limits{}, func(w *Waiter) { granted = append(granted, w) })
	lockOK(t, tb, ownA, true, WholeFile)
	tb.Lock(LockRequest{File: "f", Owner: ownB, Exclusive: true, Range: rg(0, 9), Block: true})
	tb.Unlock("f", ownA, WholeFile)
	if len(granted) != 1 {
		t.Fatal("no grant")
	}
	// The client's retransmitted LOCK arrives before the callback outcome.
	if res := tb.Lock(LockRequest{File: "f", Owner: ownB, Exclusive: true, Range: rg(0, 9), Block: true}); res.Status != StatGranted {
		t.Fatal(res)
	}
	if tb.Revoke(granted[0]) {
		t.Fatal("revoked a confirmed grant")
	}
	if len(locksOf(tb, "f")) != 1 {
		t.Fatal("lock lost")
	}
	// UNLOCK of exactly a queued request's range withdraws it.
	tb.Lock(LockRequest{File: "f", Owner: ownC, Range: rg(5, 20), Block: true})
	tb.Unlock("f", ownC, rg(5, 20))
	if _, w := tb.Counts(); w != 0 {
		t.Fatal("waiter left")
	}
	// Cancel of a provisional grant releases it.
	granted = nil
	tb.Lock(LockRequest{File: "f", Owner: ownC, Range: rg(5, 20), Block: true})
	tb.Unlock("f", ownB, WholeFile)
	if len(granted) != 1 || tb.Cancel("f", ownC, false, rg(5, 20)) != StatGranted {
		t.Fatal("cancel of provisional grant")
	}
	if l, _ := tb.Counts(); l != 0 {
		t.Fatal(locksOf(tb, "f"))
	}
}

func TestFreeAllDropFileDropVolume(t *testing.T) {
	var granted []*Waiter
	tb := NewTable(Limits{}, func(w *Waiter) { granted = append(granted, w) })
	tb.Lock(LockRequest{File: "f1", Volume: "v1", Owner: ownA, Exclusive: true, Range: WholeFile})
	tb.Lock(LockRequest{File: "f2", Volume: "v1", Owner: ownA2, Range: rg(0, 9)})
	tb.Lock(LockRequest{File: "f3", Volume: "v2", Owner: ownA, Range: rg(0, 9)})
	tb.Lock(LockRequest{File: "f3", Volume: "v2", Owner: ownB, Range: rg(5, 15)})
	tb.Lock(LockRequest{File: "f1", Volume: "v1", Owner: ownB, Range: rg(0, 0), Block: true})
	tb.Share("f4", "v2", Owner{Caller: "hostA", OH: "oh"}, ShareWrite, ShareRead)
	if n := tb.FreeAll("hostA"); n != 4 {
		t.Fatalf("freed %d", n)
	}
	if len(granted) != 1 || granted[0].Owner != ownB {
		t.Fatalf("granted %+v", granted)
	}
	if tb.ClientActive("hostA") || !tb.ClientActive("hostB") || tb.FreeAll("hostA") != 0 {
		t.Fatal("client state")
	}
	if got := tb.List("v2", ""); len(got) != 1 || got[0].Owner != ownB {
		t.Fatalf("v2: %+v", got)
	}
	tb.Lock(LockRequest{File: "f1", Volume: "v1", Owner: ownC, Range: rg(0, 0), Block: true, Exclusive: true})
	if n := tb.DropVolume("v1"); n != 2 {
		t.Fatalf("dropped %d", n)
	}
	if n := tb.DropFile("f3"); n != 1 {
		t.Fatalf("dropped %d", n)
	}
	if l, w := tb.Counts(); l != 0 || w != 0 || len(tb.files) != 0 || len(tb.owners) != 0 || len(tb.clients) != 0 {
		t.Fatalf("left: %d %d %v %v %v", l, w, tb.files, tb.owners, tb.clients)
	}
}

func TestShares(t *testing.T) {
	tb := NewTable(Limits{}, nil)
	if tb.Share("f", "v", Owner{Caller: "a", OH: "1"}, ShareWrite, ShareRead) != StatGranted {
		t.Fatal("first share")
	}
	if tb.Share("f", "v", Owner{Caller: "b", OH: "1"}, ShareNone, ShareWrite) != StatDenied {
		t.Fatal("write access against deny-write")
	}
	if tb.Share("f", "v", Owner{Caller: "b", OH: "1"}, ShareRead, ShareRead) != StatDenied {
		t.Fatal("deny-read against read access")
	}
	if tb.Share("f", "v", Owner{Caller: "b", OH: "1"}, ShareNone, ShareRead) != StatGranted {
		t.Fatal("compatible share")
	}
	if tb.Share("f", "v", Owner{Caller: "a", OH: "1"}, ShareBoth, ShareBoth) != StatDenied {
		t.Fatal("re-share conflicting with b")
	}
	tb.Unshare("f", Owner{Caller: "b", OH: "1"})
	if tb.Share("f", "v", Owner{Caller: "a", OH: "1"}, ShareBoth, ShareBoth) != StatGranted {
		t.Fatal("replace own share")
	}
	if tb.Unshare("f", Owner{Caller: "zz", OH: "1"}) != StatGranted || tb.Unshare("nofile", Owner{Caller: "a", OH: "1"}) != StatGranted {
		t.Fatal("unshare of nothing")
	}
	tb.Unshare("f", Owner{Caller: "a", OH: "1"})
	if l, _ := tb.Counts(); l != 0 || len(tb.files) != 0 {
		t.Fatal("share left")
	}
}

func TestLimits(t *testing.T) {
	tb := NewTable(Limits{MaxLocksPerOwner: 4, MaxLocks: 6, MaxOwners: 3, MaxWaitersPerFile: 2, MaxWaiters: 3}, nil)
	for i := range uint64(4) {
		lockOK(t, tb, ownA, true, rg(i*10, i*10))
	}
	if res := tb.Lock(LockRequest{File: "f", Owner: ownA, Exclusive: true, Range: rg(100, 100)}); res.Status != StatDeniedNoLocks {
		t.Fatalf("per-owner cap: %v", res.Status)
	}
	// Merging never needs room, even at the cap.
	lockOK(t, tb, ownA, true, rg(0, 10))
	// Splitting does.
	lockOK(t, tb, ownA, true, rg(40, 50))
	if st := tb.Unlock("f", ownA, rg(45, 45)); st != StatDeniedNoLocks {
		t.Fatalf("split at cap: %v", st)
	}
	lockOK(t, tb, ownB, false, rg(1000, 1000))
	lockOK(t, tb, ownB, false, rg(1002, 1002))
	if res := tb.Lock(LockRequest{File: "f", Owner: ownB, Range: rg(1004, 1004)}); res.Status != StatDeniedNoLocks {
		t.Fatalf("total cap: %v", res.Status)
	}
	if res := tb.Lock(LockRequest{File: "g", Owner: ownC, Range: rg(0, 0)}); res.Status != StatDeniedNoLocks {
		t.Fatalf("total cap, new owner: %v", res.Status)
	}
	// Waiters: two per file, three in all.
	for i, o := range []Owner{ownC, ownA2} {
		if res := tb.Lock(LockRequest{File: "f", Owner: o, Exclusive: true, Range: rg(0, 0), Block: true}); res.Status != StatBlocked {
			t.Fatalf("waiter %d: %v", i, res.Status)
		}
	}
	if res := tb.Lock(LockRequest{File: "f", Owner: ownB, Exclusive: true, Range: rg(0, 0), Block: true}); res.Status != StatDeniedNoLocks {
		t.Fatalf("per-file waiter cap: %v", res.Status)
	}
	tb.Lock(LockRequest{File: "g", Volume: "v", Owner: ownB, Exclusive: true, Range: rg(0, 0)}) // denied: total cap
	if l, w := tb.Counts(); l != 6 || w != 2 {
		t.Fatalf("counts %d %d", l, w)
	}
	// Owners: at most two hold locks at once.
	tb = NewTable(Limits{MaxOwners: 2}, nil)
	lockOK(t, tb, ownA, false, rg(0, 0))
	lockOK(t, tb, ownB, false, rg(0, 0))
	if res := tb.Lock(LockRequest{File: "f", Owner: ownC, Range: rg(0, 0)}); res.Status != StatDeniedNoLocks {
		t.Fatalf("owner cap: %v", res.Status)
	}
	tb.Unlock("f", ownB, WholeFile)
	lockOK(t, tb, ownC, false, rg(0, 0))
}
