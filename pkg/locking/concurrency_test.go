package locking

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// 16 owners on 3 hosts each do 1,000 blocking lock/unlock cycles over
// overlapping ranges of one file, exclusive and shared. Every request must
// eventually be granted (no lost wake-up, no deadlock), and while an
// owner holds a range no other owner may hold a conflicting one.
func TestConcurrentOwners(t *testing.T) {
	const owners, cycles = 16, 1000
	var mu sync.Mutex
	wakeups := map[*Waiter]chan struct{}{}
	chanFor := func(w *Waiter) chan struct{} {
		ch := wakeups[w]
		if ch == nil {
			ch = make(chan struct{}, 1)
			wakeups[w] = ch
		}
		return ch
	}
	var tb *Table
	tb = NewTable(Limits{}, func(w *Waiter) {
		tb.Confirm(w)
		mu.Lock()
		ch := chanFor(w.Data.(*Waiter))
		mu.Unlock()
		ch <- struct{}{}
	})
	// Per byte of 0..63: readers (>0) or one writer (-1).
	var bytes [64]atomic.Int32
	var wg sync.WaitGroup
	var failed atomic.Bool
	var blocked atomic.Int64
	for i := range owners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := Owner{Caller: fmt.Sprintf("host%d", i%3), Svid: int32(i), OH: fmt.Sprint(i)}
			for c := range cycles {
				start := uint64((i*7 + c*13) % 60)
				r := Range{start, start + uint64(c%4)}
				excl := (i+c)%3 != 0
				key := &Waiter{}
				mu.Lock()
				ch := chanFor(key)
				mu.Unlock()
				res := tb.Lock(LockRequest{File: "f", Owner: o, Exclusive: excl, Range: r, Block: true, Data: key})
				switch res.Status {
				case StatGranted:
				case StatBlocked:
					blocked.Add(1)
					select {
					case <-ch:
					case <-time.After(30 * time.Second):
						t.Errorf("owner %d cycle %d: never granted", i, c)
						failed.Store(true)
						return
					}
				default:
					t.Errorf("owner %d: %v", i, res.Status)
					failed.Store(true)
					return
				}
				mu.Lock()
				delete(wakeups, key)
				mu.Unlock()
				for b := r.Start; b <= r.End; b++ {
					if excl {
						if !bytes[b].CompareAndSwap(0, -1) {
							t.Errorf("owner %d: byte %d not free for writer", i, b)
							failed.Store(true)
						}
					} else if bytes[b].Add(1) <= 0 {
						t.Errorf("owner %d: byte %d held by a writer", i, b)
						failed.Store(true)
					}
				}
				for b := r.Start; b <= r.End; b++ {
					if excl {
						bytes[b].Store(0)
					} else {
						bytes[b].Add(-1)
					}
				}
				if st := tb.Unlock("f", o, r); st != StatGranted {
					t.Errorf("unlock: %v", st)
				}
				if failed.Load() {
					return
				}
			}
		}()
	}
	wg.Wait()
	if l, w := tb.Counts(); l != 0 || w != 0 {
		t.Fatalf("left %d locks, %d waiters", l, w)
	}
	t.Logf("%d requests blocked and were granted later", blocked.Load())
}
