package locking

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rwxnfs/rwxnfs/internal/rpctest"
	"github.com/rwxnfs/rwxnfs/pkg/rpc"
	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

const fh1 = "vol/v1/file1"

func TestNLMOverWire(t *testing.T) {
	h := startClientHost(t)
	d := startLockServer(t, h, Config{})
	c := dialNLM(t, d)

	if _, err := c.call(NLMProg, NLMVers, ProcNull, nil); err != nil {
		t.Fatal(err)
	}
	a := LockArgs{Cookie: []byte("cookie-1"), Exclusive: true, Lock: lk("hostA", 10, fh1, 100, 50), State: 3}
	res := c.res(ProcLock, a.Encode)
	if res.Stat != StatGranted || string(res.Cookie) != "cookie-1" {
		t.Fatalf("lock: %+v", res)
	}
	// TEST by another host reports the holder.
	tr := c.test(false, lk("hostB", 20, fh1, 0, 0))
	if tr.Stat != StatDenied || string(tr.Cookie) != "t" || !tr.Holder.Exclusive || tr.Holder.Svid != 10 ||
		string(tr.Holder.OH) != "hostA-oh" || tr.Holder.Offset != 100 || tr.Holder.Len != 50 {
		t.Fatalf("test: %+v", tr)
	}
	if tr := c.test(true, lk("hostA", 10, fh1, 0, 0)); tr.Stat != StatGranted {
		t.Fatalf("own test: %+v", tr)
	}
	if st := c.lock(LockArgs{Lock: lk("hostB", 20, fh1, 149, 1)}); st != StatDenied {
		t.Fatalf("conflicting lock: %v", st)
	}
	// Whole-file lock by another host elsewhere: a to-EOF holder has len 0.
	if st := c.lock(LockArgs{Exclusive: true, Lock: lk("hostB", 20, "vol/v1/file2", 7, 0)}); st != StatGranted {
		t.Fatal(st)
	}
	if tr := c.test(true, lk("hostA", 10, "vol/v1/file2", 1<<40, 1)); tr.Stat != StatDenied || tr.Holder.Offset != 7 || tr.Holder.Len != 0 {
		t.Fatalf("to-EOF holder: %+v", tr)
	}
	// Bad input.
	for _, tc := range []struct {
		name string
		l    Lock4
		want Stat
	}{
		{"stale", lk("hostA", 1, "stale-handle", 0, 0), StatStaleFH},
		{"empty handle", lk("hostA", 1, "", 0, 0), StatStaleFH},
		{"oversized handle", lk("hostA", 1, "vol/v1/"+string(bytes.Repeat([]byte("x"), 100)), 0, 0), StatStaleFH},
		{"refused", lk("hostA", 1, "forbidden/x", 0, 0), StatFailed},
		{"overflow", lk("hostA", 1, fh1, math.MaxUint64-5, 10), StatFBig},
	} {
		if st := c.lock(LockArgs{Exclusive: true, Lock: tc.l}); st != tc.want {
			t.Errorf("lock %s: %v want %v", tc.name, st, tc.want)
		}
		if tr := c.test(true, tc.l); tr.Stat != tc.want {
			t.Errorf("test %s: %v want %v", tc.name, tr.Stat, tc.want)
		}
	}
	// The last byte of the offset space is fine.
	if st := c.lock(LockArgs{Lock: lk("hostA", 1, fh1, math.MaxUint64, 1)}); st != StatGranted {
		t.Fatalf("last byte: %v", st)
	}
	if st := c.unlock(lk("hostA", 1, fh1, math.MaxUint64-5, 10)); st != StatFBig {
		t.Fatalf("unlock overflow: %v", st)
	}
	// Unlocks of unheld ranges, unknown owners, unknown files succeed.
	for _, l := range []Lock4{lk("hostZ", 99, fh1, 0, 0), lk("hostA", 10, fh1, 0, 10), lk("hostA", 10, "vol/v9/none", 0, 0), lk("hostA", 10, "stale", 0, 0)} {
		if st := c.unlock(l); st != StatGranted {
			t.Fatalf("unlock %+v: %v", l, st)
		}
	}
	// Cancel of nothing is denied.
	ca := CancArgs{Cookie: []byte("c"), Block: true, Exclusive: true, Lock: lk("hostB", 20, fh1, 0, 0)}
	if res := c.res(ProcCancel, ca.Encode); res.Stat != StatDenied || string(res.Cookie) != "c" {
		t.Fatalf("cancel of nothing: %+v", res)
	}
	// Unlock splits: hostA keeps [100,119] and [130,149].
	if st := c.unlock(lk("hostA", 10, fh1, 120, 10)); st != StatGranted {
		t.Fatal(st)
	}
	if st := c.lock(LockArgs{Exclusive: true, Lock: lk("hostB", 20, fh1, 120, 10)}); st != StatGranted {
		t.Fatalf("lock in the hole: %v", st)
	}
	if st := c.lock(LockArgs{Exclusive: true, Lock: lk("hostB", 20, fh1, 119, 1)}); st != StatDenied {
		t.Fatalf("lock on the edge: %v", st)
	}
	if got := d.svc.Locks("v1", "hostA"); len(got) != 3 {
		t.Fatalf("hostA locks on v1: %+v", got)
	}

	// Garbage and unknown procedures are RPC errors, not crashes.
	_, err := c.call(NLMProg, NLMVers, ProcLock, func(w *xdr.Writer) { w.Uint32(5000) })
	var re *rpc.ReplyError
	if !errors.As(err, &re) || re.Accept != rpc.GarbageArgs {
		t.Fatalf("garbage: %v", err)
	}
	if _, err := c.call(NLMProg, NLMVers, 17, nil); !errors.As(err, &re) || re.Accept != rpc.ProcUnavail {
		t.Fatalf("proc 17: %v", err)
	}
	if _, err := c.call(NLMProg, 1, ProcNull, nil); !errors.As(err, &re) || re.Accept != rpc.ProgMismatch {
		t.Fatalf("version 1: %v", err)
	}
	// GRANTED to a server: there is nothing to grant.
	ta := TestArgs{Cookie: []byte("g"), Lock: lk("hostA", 1, fh1, 0, 0)}
	if res := c.res(ProcGranted, ta.Encode); res.Stat != StatDenied {
		t.Fatalf("granted: %+v", res)
	}
	// NM_LOCK never blocks and does not monitor.
	if st := c.res(ProcNMLock, (&LockArgs{Block: true, Exclusive: true, Lock: lk("pc-host", 1, fh1, 0, 0)}).Encode).Stat; st != StatDenied {
		t.Fatalf("nm_lock: %v", st)
	}
	if st := c.res(ProcNMLock, (&LockArgs{Exclusive: true, Lock: lk("pc-host", 1, "vol/v1/nm", 0, 0)}).Encode).Stat; st != StatGranted {
		t.Fatalf("nm_lock: %v", st)
	}
	for _, ci := range d.svc.Clients() {
		if ci.Name == "pc-host" && ci.Monitored {
			t.Fatal("NM_LOCK client monitored")
		}
	}
}

func TestBlockingLockGrantedCallback(t *testing.T) {
	h := startClientHost(t)
	d := startLockServer(t, h, Config{})
	c := dialNLM(t, d)
	if st := c.lock(LockArgs{Exclusive: true, Lock: lk("hostA", 1, fh1, 0, 0)}); st != StatGranted {
		t.Fatal(st)
	}
	b := LockArgs{Cookie: []byte("b-cookie"), Block: true, Exclusive: true, Lock: lk("hostB", 2, fh1, 10, 10), State: 1}
	if st := c.lock(b); st != StatBlocked {
		t.Fatalf("blocking lock: %v", st)
	}
	if st := c.lock(b); st != StatBlocked {
		t.Fatalf("retransmitted blocking lock: %v", st)
	}
	if _, w := d.svc.Table().Counts(); w != 1 {
		t.Fatalf("%d waiters", w)
	}
	c.unlock(lk("hostA", 1, fh1, 0, 0))
	var ga TestArgs
	if err := ga.Decode(xdr.NewReader(h.next(t, NLMProg, ProcGranted))); err != nil {
		t.Fatal(err)
	}
	if string(ga.Cookie) != "b-cookie" || !ga.Exclusive || ga.Lock.CallerName != "hostB" || ga.Lock.Svid != 2 ||
		ga.Lock.Offset != 10 || ga.Lock.Len != 10 || string(ga.Lock.FH) != fh1 || string(ga.Lock.OH) != "hostB-oh" {
		t.Fatalf("GRANTED args %+v", ga)
	}
	rpctest.Eventually(t, "grant confirmed", func() bool {
		e := d.svc.Locks("", "hostB")
		return len(e) == 1 && e[0].Kind == KindLock
	})
	if tr := c.test(true, lk("hostA", 1, fh1, 0, 0)); tr.Stat != StatDenied || tr.Holder.Svid != 2 {
		t.Fatalf("after grant: %+v", tr)
	}
}

func TestRefusedOrUndeliverableGrantIsReleased(t *testing.T) {
	h := startClientHost(t)
	h.setGrantReply(func(TestArgs) Stat { return StatDenied })
	d := startLockServer(t, h, Config{CallbackRetries: 2})
	c := dialNLM(t, d)
	c.lock(LockArgs{Exclusive: true, Lock: lk("hostA", 1, fh1, 0, 0)})
	if st := c.lock(LockArgs{Block: true, Exclusive: true, Lock: lk("hostB", 2, fh1, 0, 0)}); st != StatBlocked {
		t.Fatal(st)
	}
	c.unlock(lk("hostA", 1, fh1, 0, 0))
	h.next(t, NLMProg, ProcGranted)
	rpctest.Eventually(t, "refused grant released", func() bool { l, _ := d.svc.Table().Counts(); return l == 0 })

	// Nobody listening: the portmapper port is closed.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	d2 := startLockServer(t, nil, Config{CallbackRetries: 2, Dialer: PortmapDialer{Port: dead}})
	c2 := dialNLM(t, d2)
	c2.lock(LockArgs{Exclusive: true, Lock: lk("hostA", 1, fh1, 0, 0)})
	c2.lock(LockArgs{Block: true, Exclusive: true, Lock: lk("hostB", 2, fh1, 0, 0)})
	c2.unlock(lk("hostA", 1, fh1, 0, 0))
	rpctest.Eventually(t, "undeliverable grant released", func() bool { l, w := d2.svc.Table().Counts(); return l == 0 && w == 0 })
}

// The client's retransmitted LOCK reaches the server while the GRANTED
// callback is still in flight, so the client learns of the lock from the
// LOCK reply and then refuses the callback (it has no blocked request any
// more). The lock must stay.
func TestRetransmitDuringCallbackKeepsLock(t *testing.T) {
	h := startClientHost(t)
	release := make(chan struct{})
	h.setGrantReply(func(TestArgs) Stat { <-release; return StatDenied })
	d := startLockServer(t, h, Config{})
	c := dialNLM(t, d)
	c.lock(LockArgs{Exclusive: true, Lock: lk("hostA", 1, fh1, 0, 0)})
	b := LockArgs{Block: true, Exclusive: true, Lock: lk("hostB", 2, fh1, 0, 0)}
	c.lock(b)
	c.unlock(lk("hostA", 1, fh1, 0, 0))
	h.next(t, NLMProg, ProcGranted)
	if st := c.lock(b); st != StatGranted {
		t.Fatalf("retransmit: %v", st)
	}
	close(release)
	time.Sleep(50 * time.Millisecond) // let the refusal arrive; the lock must survive it
	d.svc.Close()
	if e := d.svc.Locks("", "hostB"); len(e) != 1 || e[0].Kind != KindLock {
		t.Fatalf("lock lost: %+v", e)
	}
}

func TestCancelOverWire(t *testing.T) {
	h := startClientHost(t)
	d := startLockServer(t, h, Config{})
	c := dialNLM(t, d)
	c.lock(LockArgs{Lock: lk("hostA", 1, fh1, 0, 0), Exclusive: true})
	b := CancArgs{Cookie: []byte("x"), Block: true, Exclusive: true, Lock: lk("hostB", 2, fh1, 5, 5)}
	c.lock(LockArgs{Block: true, Exclusive: true, Lock: b.Lock})
	if res := c.res(ProcCancel, b.Encode); res.Stat != StatGranted {
		t.Fatalf("cancel: %+v", res)
	}
	if res := c.res(ProcCancel, b.Encode); res.Stat != StatDenied {
		t.Fatalf("second cancel: %+v", res)
	}
	c.unlock(lk("hostA", 1, fh1, 0, 0))
	if l, w := d.svc.Table().Counts(); l != 0 || w != 0 {
		t.Fatalf("left %d %d", l, w)
	}
}

func TestAsyncMsgProcedures(t *testing.T) {
	h := startClientHost(t)
	d := startLockServer(t, h, Config{})
	c := dialNLM(t, d)
	// LOCK_MSG: void reply, result as LOCK_RES to the client's lockd.
	la := LockArgs{Cookie: []byte("lm"), Exclusive: true, Lock: lk("hostA", 1, fh1, 0, 10)}
	if b, err := c.call(NLMProg, NLMVers, ProcLockMsg, la.Encode); err != nil || len(b) != 0 {
		t.Fatalf("lock_msg: %v %x", err, b)
	}
	var r Res
	if r.Decode(xdr.NewReader(h.next(t, NLMProg, ProcLockRes))); r.Stat != StatGranted || string(r.Cookie) != "lm" {
		t.Fatalf("LOCK_RES %+v", r)
	}
	ta := TestArgs{Cookie: []byte("tm"), Exclusive: true, Lock: lk("hostB", 2, fh1, 5, 1)}
	c.mustCall(ProcTestMsg, ta.Encode)
	var tr TestRes
	if tr.Decode(xdr.NewReader(h.next(t, NLMProg, ProcTestRes))); tr.Stat != StatDenied || string(tr.Cookie) != "tm" || tr.Holder.Svid != 1 || tr.Holder.Len != 10 {
		t.Fatalf("TEST_RES %+v", tr)
	}
	ca := CancArgs{Cookie: []byte("cm"), Lock: lk("hostB", 2, fh1, 5, 1)}
	c.mustCall(ProcCancelMsg, ca.Encode)
	if r.Decode(xdr.NewReader(h.next(t, NLMProg, ProcCancelRes))); r.Stat != StatDenied || string(r.Cookie) != "cm" {
		t.Fatalf("CANCEL_RES %+v", r)
	}
	ua := UnlockArgs{Cookie: []byte("um"), Lock: lk("hostA", 1, fh1, 0, 10)}
	c.mustCall(ProcUnlockMsg, ua.Encode)
	if r.Decode(xdr.NewReader(h.next(t, NLMProg, ProcUnlockRes))); r.Stat != StatGranted || string(r.Cookie) != "um" {
		t.Fatalf("UNLOCK_RES %+v", r)
	}
	c.mustCall(ProcGrantedMsg, ta.Encode)
	if r.Decode(xdr.NewReader(h.next(t, NLMProg, ProcGrantedRes))); r.Stat != StatDenied {
		t.Fatalf("GRANTED_RES %+v", r)
	}
	// *_RES calls from a client are accepted and ignored.
	for _, p := range []uint32{ProcLockRes, ProcCancelRes, ProcUnlockRes, ProcGrantedRes} {
		c.mustCall(p, (&Res{Cookie: []byte("z"), Stat: StatGranted}).Encode)
	}
	c.mustCall(ProcTestRes, (&TestRes{Stat: StatDenied, Holder: Holder4{OH: []byte("o")}}).Encode)
	if l, _ := d.svc.Table().Counts(); l != 0 {
		t.Fatal("lock left")
	}
}

func TestShareOverWire(t *testing.T) {
	d := startLockServer(t, startClientHost(t), Config{})
	c := dialNLM(t, d)
	sh := func(caller string, mode, access uint32, unshare bool) Stat {
		a := ShareArgs{Cookie: []byte("s"), Share: Share4{CallerName: caller, FH: []byte(fh1), OH: []byte("oh"), Mode: mode, Access: access}}
		proc := uint32(ProcShare)
		if unshare {
			proc = ProcUnshare
		}
		var res ShareRes
		if err := res.Decode(c.mustCall(proc, a.Encode)); err != nil || string(res.Cookie) != "s" {
			t.Fatalf("share: %v %+v", err, res)
		}
		return res.Stat
	}
	if sh("a", ShareWrite, ShareBoth, false) != StatGranted || sh("b", ShareNone, ShareWrite, false) != StatDenied ||
		sh("b", ShareNone, ShareRead, false) != StatGranted || sh("a", ShareNone, ShareRead, true) != StatGranted ||
		sh("c", ShareNone, ShareWrite, false) != StatGranted {
		t.Fatal("share semantics")
	}
	// Bad enum: garbage.
	_, err := c.call(NLMProg, NLMVers, ProcShare, (&ShareArgs{Share: Share4{FH: []byte(fh1), Mode: 9}}).Encode)
	var re *rpc.ReplyError
	if !errors.As(err, &re) || re.Accept != rpc.GarbageArgs {
		t.Fatalf("bad mode: %v", err)
	}
}

func TestFreeAllGrantsWaiters(t *testing.T) {
	h := startClientHost(t)
	d := startLockServer(t, h, Config{})
	c := dialNLM(t, d)
	c.lock(LockArgs{Exclusive: true, Lock: lk("hostA", 1, fh1, 0, 0)})
	c.lock(LockArgs{Exclusive: true, Lock: lk("hostA", 2, "vol/v1/other", 0, 0)})
	c.lock(LockArgs{Block: true, Exclusive: true, Lock: lk("hostB", 1, fh1, 0, 0)})
	c.mustCall(ProcFreeAll, (&Notify{Name: "hostA", State: 5}).Encode)
	h.next(t, NLMProg, ProcGranted)
	rpctest.Eventually(t, "hostB holds the lock", func() bool {
		e := d.svc.Locks("", "")
		return len(e) == 1 && e[0].Owner.Caller == "hostB" && e[0].Kind == KindLock
	})
}

func TestFloodsGetNoLocks(t *testing.T) {
	h := startClientHost(t)
	d := startLockServer(t, h, Config{
		Limits:     Limits{MaxLocksPerOwner: 16, MaxLocks: 40, MaxWaitersPerFile: 4, MaxWaiters: 6},
		MaxClients: 5,
	})
	c := dialNLM(t, d)
	counts := map[Stat]int{}
	for i := range uint64(100) {
		counts[c.lock(LockArgs{Lock: lk("hostA", 1, fh1, i*2, 1)})]++
	}
	if counts[StatGranted] != 16 || counts[StatDeniedNoLocks] != 84 {
		t.Fatalf("one owner: %v", counts)
	}
	// Many owners of one host: the total cap.
	clear(counts)
	for i := range 100 {
		counts[c.lock(LockArgs{Lock: lk("hostA", int32(100+i), fh1, 0, 1)})]++
	}
	if counts[StatGranted] != 24 || counts[StatDeniedNoLocks] != 76 {
		t.Fatalf("many owners: %v", counts)
	}
	// Waiters: per file, then in total.
	clear(counts)
	c.mustCall(ProcFreeAll, (&Notify{Name: "hostA"}).Encode)
	c.lock(LockArgs{Exclusive: true, Lock: lk("hostB", 1, "vol/v1/f2", 0, 0)})
	for i := range 10 {
		counts[c.lock(LockArgs{Block: true, Exclusive: true, Lock: lk("hostB", int32(2+i), "vol/v1/f2", 0, 0)})]++
	}
	if counts[StatBlocked] != 4 || counts[StatDeniedNoLocks] != 6 {
		t.Fatalf("waiters: %v", counts)
	}
	// Client hosts: at most five monitored.
	clear(counts)
	for i := range 10 {
		counts[c.lock(LockArgs{Lock: lk(fmt.Sprintf("flood%d", i), 1, "vol/v1/f3", 0, 1)})]++
	}
	if counts[StatGranted] != 3 || counts[StatDeniedNoLocks] != 7 {
		t.Fatalf("hosts: %v", counts)
	}
	if l, w := d.svc.Table().Counts(); l > 40 || w > 6 {
		t.Fatalf("limits broken: %d %d", l, w)
	}
}

// 16 owners on 4 hosts, 1,000 blocking lock/unlock cycles in all over
// real connections, each blocked request granted through a GRANTED
// callback to the client host's lock manager. No lock may be lost, no
// two owners may hold the file at once, and every cycle must finish.
func TestConcurrentOwnersOverWire(t *testing.T) {
	h := startClientHost(t)
	var mu sync.Mutex
	waiting := map[string]chan struct{}{}
	key := func(caller string, svid int32) string { return fmt.Sprint(caller, "/", svid) }
	h.setGrantReply(func(a TestArgs) Stat {
		mu.Lock()
		ch := waiting[key(a.Lock.CallerName, a.Lock.Svid)]
		delete(waiting, key(a.Lock.CallerName, a.Lock.Svid))
		mu.Unlock()
		if ch == nil {
			return StatDenied
		}
		close(ch)
		return StatGranted
	})
	d := startLockServer(t, h, Config{})
	const owners, total = 16, 1000
	var holders atomic.Int32
	var cycles atomic.Int32
	var wg sync.WaitGroup
	for i := range owners {
		c := dialNLM(t, d)
		wg.Add(1)
		go func() {
			defer wg.Done()
			caller := fmt.Sprintf("host%d", i%4)
			l := lk(caller, int32(i), fh1, uint64(i%3), 0)
			for cycles.Add(1) <= total {
				ch := make(chan struct{})
				mu.Lock()
				waiting[key(caller, l.Svid)] = ch
				mu.Unlock()
				st := c.lock(LockArgs{Block: true, Exclusive: true, Lock: l, State: 1})
				switch st {
				case StatGranted:
					mu.Lock()
					delete(waiting, key(caller, l.Svid))
					mu.Unlock()
				case StatBlocked:
					select {
					case <-ch:
					case <-time.After(30 * time.Second):
						t.Errorf("owner %d never granted", i)
						return
					}
				default:
					t.Errorf("owner %d: %v", i, st)
					return
				}
				if n := holders.Add(1); n != 1 {
					t.Errorf("%d holders at once", n)
				}
				holders.Add(-1)
				if st := c.unlock(l); st != StatGranted {
					t.Errorf("unlock: %v", st)
				}
			}
		}()
	}
	wg.Wait()
	rpctest.Eventually(t, "table empty", func() bool { l, w := d.svc.Table().Counts(); return l == 0 && w == 0 })
}
