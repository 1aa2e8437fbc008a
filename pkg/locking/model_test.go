package locking

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// The model: a byte array per owner over cells 0..K, where cell K stands
// for every offset from K to the end of the 64-bit space, with a FIFO of
// waiters granted by the same rule the table documents. Random operations
// are run on both and everything observable is compared after each.

const modelK = 40

type modelWaiter struct {
	o    int
	excl bool
	r    Range
}

type model struct {
	owners  []Owner
	cells   [][modelK + 1]uint8 // 0 none, 1 shared, 2 exclusive
	waiters []modelWaiter
}

func cellSpan(r Range) (int, int) {
	lo, hi := int(min(r.Start, modelK)), modelK
	if r.End < modelK {
		hi = int(r.End)
	}
	return lo, hi
}

func (m *model) conflict(o int, excl bool, r Range) bool {
	lo, hi := cellSpan(r)
	for p := range m.owners {
		if p == o {
			continue
		}
		for c := lo; c <= hi; c++ {
			if m.cells[p][c] == 2 || (excl && m.cells[p][c] == 1) {
				return true
			}
		}
	}
	return false
}

func (m *model) set(o int, r Range, v uint8) {
	lo, hi := cellSpan(r)
	for c := lo; c <= hi; c++ {
		m.cells[o][c] = v
	}
}

func mode(excl bool) uint8 {
	if excl {
		return 2
	}
	return 1
}

func (m *model) wake(granted *[]modelWaiter) {
	kept := m.waiters[:0]
	for _, w := range m.waiters {
		if !m.conflict(w.o, w.excl, w.r) {
			m.set(w.o, w.r, mode(w.excl))
			*granted = append(*granted, w)
			continue
		}
		kept = append(kept, w)
	}
	m.waiters = kept
}

func randRange(rnd *rand.Rand) Range {
	s := uint64(rnd.IntN(modelK))
	if rnd.IntN(5) == 0 {
		return Range{s, ToEOF}
	}
	return Range{s, s + uint64(rnd.IntN(min(12, modelK-int(s))))}
}

func TestModelRandom(t *testing.T) {
	for seed := range uint64(40) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runModel(t, seed, 400) })
	}
}

func runModel(t *testing.T, seed uint64, steps int) {
	rnd := rand.New(rand.NewPCG(seed, 99))
	owners := []Owner{ownA, ownA2, ownB, ownC}
	m := &model{owners: owners, cells: make([][modelK + 1]uint8, len(owners))}
	var got []*Waiter
	var tb *Table
	tb = NewTable(Limits{}, func(w *Waiter) {
		got = append(got, w)
		tb.Confirm(w)
	})
	idx := func(o Owner) int { return slices.Index(owners, o) }
	for step := range steps {
		o := rnd.IntN(len(owners))
		r := randRange(rnd)
		excl := rnd.IntN(2) == 0
		var want []modelWaiter
		got = got[:0]
		var desc string
		switch op := rnd.IntN(10); {
		case op < 4: // lock
			block := rnd.IntN(2) == 0
			desc = fmt.Sprintf("lock o%d excl=%v block=%v %v", o, excl, block, r)
			res := tb.Lock(LockRequest{File: "f", Owner: owners[o], Exclusive: excl, Range: r, Block: block})
			wantSt := StatGranted
			if m.conflict(o, excl, r) {
				wantSt = StatDenied
				if block {
					wantSt = StatBlocked
					if !slices.Contains(m.waiters, modelWaiter{o, excl, r}) {
						m.waiters = append(m.waiters, modelWaiter{o, excl, r})
					}
				}
				h := res.Conflict
				if h == nil || idx(h.Owner) == o || !h.Range.Overlaps(r) || !(excl || h.Exclusive) {
					t.Fatalf("step %d %s: bad conflict %+v", step, desc, h)
				}
				lo, hi := cellSpan(h.Range)
				for c := lo; c <= hi; c++ {
					if m.cells[idx(h.Owner)][c] != mode(h.Exclusive) {
						t.Fatalf("step %d %s: reported holder %+v not in model", step, desc, h)
					}
				}
			} else {
				m.set(o, r, mode(excl))
				m.wake(&want)
			}
			if res.Status != wantSt {
				t.Fatalf("step %d %s: %v want %v", step, desc, res.Status, wantSt)
			}
		case op < 7: // unlock
			desc = fmt.Sprintf("unlock o%d %v", o, r)
			if st := tb.Unlock("f", owners[o], r); st != StatGranted {
				t.Fatalf("step %d %s: %v", step, desc, st)
			}
			m.set(o, r, 0)
			m.waiters = slices.DeleteFunc(m.waiters, func(w modelWaiter) bool { return w.o == o && w.r == r })
			m.wake(&want)
		case op < 8: // cancel
			desc = fmt.Sprintf("cancel o%d excl=%v %v", o, excl, r)
			wantSt := StatDenied
			if i := slices.Index(m.waiters, modelWaiter{o, excl, r}); i >= 0 {
				m.waiters = slices.Delete(m.waiters, i, i+1)
				wantSt = StatGranted
			}
			if st := tb.Cancel("f", owners[o], excl, r); st != wantSt {
				t.Fatalf("step %d %s: %v want %v", step, desc, st, wantSt)
			}
		case op < 9: // test
			desc = fmt.Sprintf("test o%d excl=%v %v", o, excl, r)
			h := tb.Test("f", owners[o], excl, r)
			if (h != nil) != m.conflict(o, excl, r) {
				t.Fatalf("step %d %s: holder %+v", step, desc, h)
			}
		default: // free all of a client host
			c := owners[o].Caller
			desc = "free_all " + c
			tb.FreeAll(c)
			for p := range owners {
				if owners[p].Caller == c {
					m.cells[p] = [modelK + 1]uint8{}
				}
			}
			m.waiters = slices.DeleteFunc(m.waiters, func(w modelWaiter) bool { return owners[w.o].Caller == c })
			m.wake(&want)
		}
		// Grants, in order.
		if len(got) != len(want) {
			t.Fatalf("step %d %s: granted %d want %d", step, desc, len(got), len(want))
		}
		for i, w := range got {
			if (modelWaiter{idx(w.Owner), w.Exclusive, w.Range}) != want[i] {
				t.Fatalf("step %d %s: grant %d = %+v want %+v", step, desc, i, w, want[i])
			}
		}
		checkAgainstModel(t, tb, m, fmt.Sprintf("step %d %s", step, desc))
	}
}

func checkAgainstModel(t *testing.T, tb *Table, m *model, where string) {
	t.Helper()
	cells := make([][modelK + 1]uint8, len(m.owners))
	last := map[Owner]Entry{}
	nlocks := 0
	var waiters []modelWaiter
	for _, e := range tb.List("", "") {
		o := slices.Index(m.owners, e.Owner)
		switch e.Kind {
		case KindLock:
			nlocks++
			if p, ok := last[e.Owner]; ok {
				if p.Range.End >= e.Range.Start {
					t.Fatalf("%s: overlapping or unsorted locks %+v %+v", where, p, e)
				}
				if p.Exclusive == e.Exclusive && p.Range.touches(e.Range) {
					t.Fatalf("%s: unmerged locks %+v %+v", where, p, e)
				}
			}
			last[e.Owner] = e
			lo, hi := cellSpan(e.Range)
			for c := lo; c <= hi; c++ {
				cells[o][c] = mode(e.Exclusive)
			}
		case KindWaiter:
			waiters = append(waiters, modelWaiter{o, e.Exclusive, e.Range})
		}
	}
	for o := range m.owners {
		if cells[o] != m.cells[o] {
			t.Fatalf("%s: owner %d\n got  %v\n want %v", where, o, cells[o], m.cells[o])
		}
	}
	if !slices.Equal(waiters, m.waiters) {
		t.Fatalf("%s: waiters %v want %v", where, waiters, m.waiters)
	}
	l, w := tb.Counts()
	if l != nlocks || w != len(m.waiters) {
		t.Fatalf("%s: counts %d/%d, listed %d/%d", where, l, w, nlocks, len(m.waiters))
	}
	n := 0
	for _, os := range tb.owners {
		n += os.nlocks
		if os.nlocks == 0 {
			t.Fatalf("%s: idle owner kept", where)
		}
	}
	if n != nlocks {
		t.Fatalf("%s: owner counts %d != %d", where, n, nlocks)
	}
}
