package exports

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// within runs f and fails the test if it has not returned after d: the
// copier bugs these tests guard against hang or spin forever.
func within(t *testing.T, d time.Duration, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("%s did not return in %v", what, d)
		return nil
	}
}

// swapVolume makes a volume holding one 1 MiB regular file "f" and a
// directory "d" with a file in it.
func swapVolume(t *testing.T, tb *Table) *Volume {
	t.Helper()
	v, _, err := tb.CreateVolume(context.Background(), CreateRequest{ID: "src", Options: DefaultOptions()})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(v.Dir(), "f"), bytes.Repeat([]byte{7}, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(v.Dir(), "d", "e"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(v.Dir(), "d", "e", "g"), []byte("g"), 0o644); err != nil {
		t.Fatal(err)
	}
	return v
}

// A client swaps a FIFO or a device node in place of a regular file
// between the copier's look at the entry and its open: the copier must
// neither block on the FIFO nor open the device (with /dev/null's
// numbers, the old copier spun at 100 % CPU forever).
func TestCopierSwappedSpecialFile(t *testing.T) {
	for _, kind := range []string{"fifo", "chardev"} {
		t.Run(kind, func(t *testing.T) {
			tb := openTable(t, t.TempDir())
			v := swapVolume(t, tb)
			var once sync.Once
			tb.copyHook = func(rel string) {
				if rel != "f" {
					return
				}
				once.Do(func() {
					tmp := filepath.Join(v.Dir(), ".swap")
					var err error
					if kind == "fifo" {
						err = unix.Mkfifo(tmp, 0o644)
					} else {
						err = unix.Mknod(tmp, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3)))
					}
					if err == nil {
						err = os.Rename(tmp, filepath.Join(v.Dir(), "f"))
					}
					if err != nil {
						t.Error(err)
					}
				})
			}
			err := within(t, 20*time.Second, "a snapshot with a swapped "+kind, func() error { return snapshotAndWait(tb, "s", "src") })
			if err != nil {
				t.Fatalf("snapshot: %v", err)
			}
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(tb.SnapshotDir("s"), "f"), &st); err != nil {
				t.Fatal(err)
			}
			// Either what was there when the copier pinned the entry (the
			// regular file, whole) or the special file, never a mix.
			switch st.Mode & unix.S_IFMT {
			case unix.S_IFREG:
				if st.Size != 1<<20 {
					t.Fatalf("copied f has %d bytes", st.Size)
				}
			case unix.S_IFIFO, unix.S_IFCHR:
			default:
				t.Fatalf("copied f has mode %o", st.Mode)
			}
		})
	}
}

// An entry removed while the copier works on it is simply not in the
// snapshot (it was "no such file or directory" and a failed snapshot).
func TestCopierEntryRemovedMidCopy(t *testing.T) {
	tb := openTable(t, t.TempDir())
	v := swapVolume(t, tb)
	var removed atomic.Int32
	tb.copyHook = func(rel string) {
		if rel == "f" || rel == "d" {
			if err := os.RemoveAll(filepath.Join(v.Dir(), rel)); err != nil {
				t.Error(err)
			}
			removed.Add(1)
		}
	}
	if err := snapshotAndWait(tb, "s", "src"); err != nil {
		t.Fatalf("snapshot of a volume whose files went away during the copy: %v", err)
	}
	if removed.Load() != 2 {
		t.Fatalf("hook removed %d entries, want 2", removed.Load())
	}
}

// A snapshot copies while clients change the volume: every snapshot
// succeeds, and nothing outside the volume changes.
func TestSnapshotBusyVolume(t *testing.T) {
	tb := openTable(t, t.TempDir())
	v := swapVolume(t, tb)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				d := filepath.Join(v.Dir(), fmt.Sprintf("w%d-%d", w, i%7))
				os.MkdirAll(filepath.Join(d, "sub"), 0o755)
				for j := 0; j < 5; j++ {
					os.WriteFile(filepath.Join(d, "sub", fmt.Sprint(j)), []byte("data"), 0o644)
					os.Symlink("x", filepath.Join(d, fmt.Sprint("l", j)))
				}
				os.RemoveAll(d)
			}
		}(w)
	}
	defer func() { close(stop); wg.Wait() }()
	for i := 0; i < 25; i++ {
		id := fmt.Sprint("busy-", i)
		if err := snapshotAndWait(tb, id, "src"); err != nil {
			t.Fatalf("snapshot %d of a busy volume: %v", i, err)
		}
		if err := tb.DeleteSnapshot(id); err != nil {
			t.Fatal(err)
		}
	}
}

// A long copy does not hold up other volumes' lifecycle calls.
func TestSnapshotDoesNotBlockLifecycle(t *testing.T) {
	tb := openTable(t, t.TempDir())
	swapVolume(t, tb)
	if _, _, err := tb.CreateVolume(context.Background(), CreateRequest{ID: "doomed", Options: DefaultOptions()}); err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	tb.copyHook = func(rel string) {
		if rel == "f" {
			once.Do(func() { close(entered); <-release })
		}
	}
	snapDone := make(chan error, 1)
	go func() { snapDone <- snapshotAndWait(tb, "slow", "src") }()
	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the copy never started")
	}
	err := within(t, 10*time.Second, "lifecycle calls during a snapshot copy", func() error {
		if _, _, err := tb.CreateVolume(context.Background(), CreateRequest{ID: "other", Options: DefaultOptions()}); err != nil {
			return err
		}
		if _, err := tb.ExpandVolume("other", 1<<20); err != nil {
			return err
		}
		_, err := tb.DeleteVolume("doomed", ReclaimDelete)
		return err
	})
	close(release)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-snapDone; err != nil {
		t.Fatal(err)
	}
}

// snapshotAndWait asks for a snapshot and waits for its copy to end:
// nil once it is ready, the recorded error if the copy failed.
func snapshotAndWait(tb *Table, id, src string) error {
	if _, _, err := tb.CreateSnapshot(id, src); err != nil {
		return err
	}
	_, err := waitSnapshot(tb, id)
	return err
}

// waitSnapshot waits until a snapshot's copy has ended.
func waitSnapshot(tb *Table, id string) (*Snapshot, error) {
	for {
		tb.opMu.Lock()
		j := tb.jobs.snapshots[id]
		tb.opMu.Unlock()
		if j != nil {
			<-j.done
		}
		s, err := tb.Snapshot(id)
		if err != nil {
			return nil, err
		}
		switch {
		case !s.Pending:
			return s, nil
		case s.Error != "":
			return s, errors.New(s.Error)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
