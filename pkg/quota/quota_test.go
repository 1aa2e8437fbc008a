package quota

import (
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Reservations racing for the last bytes: exactly as many succeed as fit.
func TestReserveIsAtomic(t *testing.T) {
	v, err := New("", Limits{Bytes: 1000, Inodes: 10})
	if err != nil {
		t.Fatal(err)
	}
	var ok, inodes atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 100; k++ {
				if v.Reserve(7, 0) == nil {
					ok.Add(1)
				}
				if v.Reserve(0, 1) == nil {
					inodes.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1000/7 || v.Usage().Bytes != 1000/7*7 || inodes.Load() != 10 || v.Usage().Inodes != 10 {
		t.Fatalf("%d byte reservations, %d inode reservations, usage %+v", ok.Load(), inodes.Load(), v.Usage())
	}
	if !(v.Reserve(-7, -1) == nil && v.Reserve(7, 0) == nil) {
		t.Fatal("freeing or refilling refused")
	}
	if v.Reserve(7, 0) != ErrQuota {
		t.Fatal("over the limit admitted")
	}
	v.SetLimits(Limits{})
	if v.Reserve(1<<40, 1<<20) != nil {
		t.Fatal("no limit refused")
	}
}

func TestUsagePersists(t *testing.T) {
	p := filepath.Join(t.TempDir(), "u.json")
	v, _ := New(p, Limits{Bytes: 100})
	v.Add(42, 3)
	if err := v.Flush(); err != nil {
		t.Fatal(err)
	}
	w, err := New(p, Limits{})
	if err != nil || w.Usage() != (Usage{42, 3}) {
		t.Fatalf("reloaded %+v %v", w.Usage(), err)
	}
	w.Retire()
	w.Add(1, 1)
	w.Flush()
	if x, _ := New(p, Limits{}); x.Usage() != (Usage{42, 3}) {
		t.Fatalf("a retired volume saved usage: %+v", x.Usage())
	}
}

// LockNames takes each stripe once and in one order: the same name twice
// in one call, and two operations locking the same two names in opposite
// orders, never deadlock; and a held name excludes a second holder.
func TestLockNames(t *testing.T) {
	v, err := New("", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	a, b := Name{Dir: []byte("dir1"), Name: "a"}, Name{Dir: []byte("dir2"), Name: "b"}
	v.LockNames(a, a)() // would deadlock if a stripe were taken twice
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 2000; i++ {
			v.LockNames(a, b)()
		}
	}()
	for i := 0; i < 2000; i++ {
		v.LockNames(b, a)()
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("LockNames deadlocked")
	}
	unlock := v.LockNames(a)
	got := make(chan struct{})
	go func() { v.LockNames(a)(); close(got) }()
	select {
	case <-got:
		t.Fatal("a name was locked twice at once")
	case <-time.After(50 * time.Millisecond):
	}
	unlock()
	<-got
}

// TestCeilingOutlivesACrash: growth admitted since the last save is never
// forgotten by a crash (here: the accountant is dropped unflushed and the
// file loaded again, as a restart after kill -9 does). Until a walk, the
// reloaded usage is at least what was admitted, so the limit stays shut;
// a save lowers the ceiling back to usage plus one headroom.
func TestCeilingOutlivesACrash(t *testing.T) {
	p := filepath.Join(t.TempDir(), "u.json")
	lim := Limits{Bytes: 64 << 20, Inodes: 1000}
	v, _ := New(p, lim)
	if err := v.Flush(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 63; i++ {
		if err := v.Reserve(1<<20, 1); err != nil {
			t.Fatal(err)
		}
	}
	// Crash: no Flush.
	w, err := New(p, lim)
	if err != nil {
		t.Fatal(err)
	}
	if u := w.Usage(); u.Bytes < 63<<20 || u.Inodes < 63 {
		t.Fatalf("after a crash usage reloads as %+v, below the %d bytes and 63 inodes admitted", u, 63<<20)
	}
	if w.Reserve(2<<20, 0) != ErrQuota {
		t.Fatal("after a crash, growth past the limit was admitted")
	}
	// A save lowers the ceiling: within one headroom (1 MiB) of usage.
	v.Add(-60<<20, -60)
	if err := v.Flush(); err != nil {
		t.Fatal(err)
	}
	w, _ = New(p, lim)
	if u := w.Usage(); u.Bytes != 4<<20 || u.Inodes != 3+64 {
		t.Fatalf("after a save usage reloads as %+v, want usage plus one headroom", u)
	}
}
