package exports

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// Copies shows a snapshot's copy as it goes: what it makes, from what,
// the bytes copied so far of those expected; nothing once it is done.
func TestCopiesProgress(t *testing.T) {
	tb := openTable(t, t.TempDir())
	v, _, err := tb.CreateVolume(context.Background(), CreateRequest{ID: "src", Options: DefaultOptions()})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "b"} {
		if err := os.WriteFile(filepath.Join(v.Dir(), n), bytes.Repeat([]byte{1}, 1<<20), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := tb.Reconcile(v); err != nil {
		t.Fatal(err)
	}
	// Stop at the second file: the first is copied, the second not.
	in, out := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	files := 0
	tb.copyHook = func(rel string) {
		mu.Lock()
		if rel == "a" || rel == "b" {
			files++
		}
		second := files == 2 && (rel == "a" || rel == "b")
		mu.Unlock()
		if second {
			close(in)
			<-out
		}
	}
	if _, _, err := tb.CreateSnapshot("s1", "src"); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, in, "second file")
	cs := tb.Copies()
	close(out)
	if len(cs) != 1 || cs[0] != (CopyProgress{Kind: "snapshot", ID: "s1", Source: "volume/src", Written: 1 << 20, Expected: 2 << 20}) {
		t.Fatalf("Copies while the first of two files is copied: %+v", cs)
	}
	for {
		s, err := tb.Snapshot("s1")
		if err != nil {
			t.Fatal(err)
		}
		if !s.Pending {
			break
		}
		tb.jobs.wg.Wait()
	}
	if cs := tb.Copies(); len(cs) != 0 {
		t.Fatalf("Copies after the copy: %+v", cs)
	}
}
