package exports

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// blockCopies makes every copy stop at its first entry until the
// returned release is called; entered closes when one has stopped there.
func blockCopies(tb *Table) (entered <-chan struct{}, release func()) {
	in, out := make(chan struct{}), make(chan struct{})
	var once, rel sync.Once
	tb.copyHook = func(string) {
		once.Do(func() { close(in) })
		<-out
	}
	return in, func() { rel.Do(func() { close(out) }) }
}

func waitClosed(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: timed out", what)
	}
}

// A snapshot is not ready until its copy is done; meanwhile it is listed
// as pending, cannot be restored from, and keeps its source volume from
// being deleted. Then it becomes ready and restorable.
func TestSnapshotAsync(t *testing.T) {
	tb := openTable(t, t.TempDir())
	v := swapVolume(t, tb)
	if err := tb.Reconcile(v); err != nil {
		t.Fatal(err)
	}
	entered, release := blockCopies(tb)
	defer release()
	s, existed, err := tb.CreateSnapshot("s1", "src")
	if err != nil || existed || !s.Pending {
		t.Fatalf("create: %+v existed=%v err=%v, want a pending snapshot", s, existed, err)
	}
	waitClosed(t, entered, "copy start")
	if got, err := tb.Snapshot("s1"); err != nil || !got.Pending {
		t.Fatalf("while copying: %+v %v, want pending", got, err)
	}
	if again, existed, err := tb.CreateSnapshot("s1", "src"); err != nil || !existed || !again.Pending {
		t.Fatalf("repeat while copying: %+v existed=%v %v", again, existed, err)
	}
	_, _, err = tb.CreateVolume(context.Background(), CreateRequest{ID: "r", Options: DefaultOptions(), Source: &Source{Snapshot: "s1"}})
	if KindOf(err) != KindPrecondition {
		t.Fatalf("restore from a pending snapshot: %v, want KindPrecondition", err)
	}
	if _, err := tb.DeleteVolume("src", ""); KindOf(err) != KindPrecondition {
		t.Fatalf("deleting the source of a running copy: %v, want KindPrecondition", err)
	}
	c, err := tb.Capacity()
	if err != nil || c.Copying <= 0 {
		t.Fatalf("capacity while copying %d bytes: %+v %v", v.Quota.Usage().Bytes, c, err)
	}
	release()
	got, err := waitSnapshot(tb, "s1")
	if err != nil || got.Pending || got.Usage != v.Quota.Usage() {
		t.Fatalf("after the copy: %+v %v (volume usage %+v)", got, err, v.Quota.Usage())
	}
	sameTree(t, v.Dir(), tb.SnapshotDir("s1"))
	if _, _, err := tb.CreateVolume(context.Background(), CreateRequest{ID: "r", Options: DefaultOptions(), Source: &Source{Snapshot: "s1"}}); err != nil {
		t.Fatal(err)
	}
	if c, _ := tb.Capacity(); c.Copying != 0 {
		t.Fatalf("copying %d bytes after every copy ended", c.Copying)
	}
}

// Deleting a snapshot whose copy runs cancels the copy and leaves
// nothing behind.
func TestDeleteSnapshotWhileCopying(t *testing.T) {
	root := t.TempDir()
	tb := openTable(t, root)
	swapVolume(t, tb)
	entered, release := blockCopies(tb)
	if _, _, err := tb.CreateSnapshot("s1", "src"); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, entered, "copy start")
	deleted := make(chan error, 1)
	go func() { deleted <- tb.DeleteSnapshot("s1") }()
	time.Sleep(50 * time.Millisecond)
	release() // the hook returns; the copier then sees the cancellation
	select {
	case err := <-deleted:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("DeleteSnapshot did not return")
	}
	if _, err := tb.Snapshot("s1"); KindOf(err) != KindNotFound {
		t.Fatalf("after delete: %v", err)
	}
	for _, d := range []string{filepath.Join(root, "snapshots"), filepath.Join(root, "state", "intents")} {
		if ents, _ := os.ReadDir(d); len(ents) != 0 {
			t.Fatalf("left in %s: %v", d, ents)
		}
	}
	if _, err := tb.DeleteVolume("src", ""); err != nil {
		t.Fatalf("the source stays protected after its snapshot went: %v", err)
	}
}

// A snapshot whose copy is cut short by a shutdown is copied again by the
// next start, and becomes ready.
func TestSnapshotSurvivesRestart(t *testing.T) {
	root := t.TempDir()
	tb, err := Open(Config{Root: root, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	swapVolume(t, tb)
	entered, release := blockCopies(tb)
	if _, _, err := tb.CreateSnapshot("s1", "src"); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, entered, "copy start")
	closed := make(chan struct{})
	go func() { tb.Close(); close(closed) }()
	time.Sleep(50 * time.Millisecond)
	release()
	waitClosed(t, closed, "Close with a copy running")
	if s, err := tb.Snapshot("s1"); err != nil || !s.Pending {
		t.Fatalf("after shutdown mid-copy: %+v %v, want pending", s, err)
	}
	tb2 := openTable(t, root)
	s, err := waitSnapshot(tb2, "s1")
	if err != nil || s.Pending {
		t.Fatalf("after restart: %+v %v", s, err)
	}
	sameTree(t, tb2.MustVolume("src").Dir(), tb2.SnapshotDir("s1"))
}

// A copy that fails is recorded with its error; a repeated CreateSnapshot
// retries it.
func TestSnapshotFailureRetried(t *testing.T) {
	tb := openTable(t, t.TempDir())
	v := swapVolume(t, tb)
	// The first copy fails: its staging tree goes away under it.
	fail := true
	tb.copyHook = func(rel string) {
		if fail && rel == "f" {
			os.RemoveAll(tb.stagingDir("snapshot", "s1"))
		}
	}
	if err := snapshotAndWait(tb, "s1", "src"); err == nil {
		t.Fatal("the copy succeeded with its staging tree removed under it")
	}
	s, err := tb.Snapshot("s1")
	if err != nil || !s.Pending || s.Error == "" {
		t.Fatalf("failed snapshot recorded as %+v %v", s, err)
	}
	fail = false
	if _, existed, err := tb.CreateSnapshot("s1", "src"); err != nil || !existed {
		t.Fatalf("retry: existed=%v %v", existed, err)
	}
	if s, err := waitSnapshot(tb, "s1"); err != nil || s.Pending || s.Error != "" {
		t.Fatalf("after the retry: %+v %v", s, err)
	}
	sameTree(t, v.Dir(), tb.SnapshotDir("s1"))
}

// A clone outlives a caller that gives up: the caller gets KindAborted,
// a repeat waits for the same copy and gets the volume; meanwhile the
// new id cannot be deleted and the source cannot go.
func TestCloneInBackground(t *testing.T) {
	tb := openTable(t, t.TempDir())
	v := swapVolume(t, tb)
	entered, release := blockCopies(tb)
	defer release()
	req := CreateRequest{ID: "c", Options: DefaultOptions(), Source: &Source{Volume: "src"}}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, _, err := tb.CreateVolume(ctx, req); KindOf(err) != KindAborted {
		t.Fatalf("caller gave up: %v, want KindAborted", err)
	}
	waitClosed(t, entered, "copy start")
	if _, err := tb.DeleteVolume("c", ""); KindOf(err) != KindAborted {
		t.Fatalf("deleting a volume being made: %v, want KindAborted", err)
	}
	if _, err := tb.DeleteVolume("src", ""); KindOf(err) != KindPrecondition {
		t.Fatalf("deleting a clone's source: %v, want KindPrecondition", err)
	}
	other := req
	other.Options.ReadOnly = true
	got := make(chan error, 2)
	go func() {
		c, existed, err := tb.CreateVolume(context.Background(), req)
		if err == nil && (!existed || c.ID != "c") {
			err = errors.New("repeat did not return the volume as existing")
		}
		got <- err
	}()
	go func() {
		_, _, err := tb.CreateVolume(context.Background(), other)
		if KindOf(err) != KindExists {
			err = errors.New("a different request for the same id was not refused: " + fmt.Sprint(err))
		} else {
			err = nil
		}
		got <- err
	}()
	time.Sleep(50 * time.Millisecond)
	release()
	for i := 0; i < 2; i++ {
		if err := <-got; err != nil {
			t.Fatal(err)
		}
	}
	sameTree(t, v.Dir(), tb.MustVolume("c").Dir())
	if _, err := tb.DeleteVolume("src", ""); err != nil {
		t.Fatalf("the source stays protected after the clone: %v", err)
	}
}
