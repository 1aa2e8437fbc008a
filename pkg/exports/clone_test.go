package exports

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestCloneAndSnapshotRestore(t *testing.T) {
	root := t.TempDir()
	tb := openTable(t, root)
	src, _, err := tb.CreateVolume(context.Background(), CreateRequest{ID: "src", Capacity: Exactly(64 << 20), Options: DefaultOptions()})
	if err != nil {
		t.Fatal(err)
	}
	makeRichTree(t, src.Dir())
	if err := tb.Reconcile(src); err != nil {
		t.Fatal(err)
	}
	clone, _, err := tb.CreateVolume(context.Background(), CreateRequest{ID: "clone", Capacity: Exactly(64 << 20), Options: DefaultOptions(), Source: &Source{Volume: "src"}})
	if err != nil {
		t.Fatal(err)
	}
	sameTree(t, src.Dir(), clone.Dir())
	if clone.Quota.Usage() != src.Quota.Usage() {
		t.Fatalf("clone usage %+v, source %+v", clone.Quota.Usage(), src.Quota.Usage())
	}
	_, existed, err := tb.CreateSnapshot("snap1", "src")
	if err != nil || existed {
		t.Fatal(err)
	}
	snap, err := waitSnapshot(tb, "snap1")
	if err != nil {
		t.Fatal(err)
	}
	if _, existed, err := tb.CreateSnapshot("snap1", "src"); err != nil || !existed {
		t.Fatalf("repeat snapshot: %v %v", existed, err)
	}
	if _, _, err := tb.CreateSnapshot("snap1", "clone"); KindOf(err) != KindExists {
		t.Fatalf("snapshot name reused for another volume: %v", err)
	}
	sameTree(t, src.Dir(), tb.SnapshotDir("snap1"))
	// The snapshot is point in time: later changes do not reach it.
	os.WriteFile(filepath.Join(src.Dir(), "later"), []byte("x"), 0o644)
	restored, _, err := tb.CreateVolume(context.Background(), CreateRequest{ID: "restored", Capacity: Exactly(64 << 20), Options: DefaultOptions(), Source: &Source{Snapshot: "snap1"}})
	if err != nil {
		t.Fatal(err)
	}
	sameTree(t, tb.SnapshotDir("snap1"), restored.Dir())
	if _, err := os.Lstat(filepath.Join(restored.Dir(), "later")); err == nil {
		t.Fatal("a change after the snapshot reached the restored volume")
	}
	if restored.Quota.Usage() != snap.Usage {
		t.Fatalf("restored usage %+v, snapshot %+v", restored.Quota.Usage(), snap.Usage)
	}
	if _, _, err := tb.CreateVolume(context.Background(), CreateRequest{ID: "small", Capacity: Exactly(1 << 20), Options: DefaultOptions(), Source: &Source{Snapshot: "snap1"}}); KindOf(err) != KindOutOfRange {
		t.Fatalf("restore into a too small volume: %v, want OutOfRange", err)
	}
	if _, _, err := tb.CreateVolume(context.Background(), CreateRequest{ID: "few", InodeLimit: 3, Options: DefaultOptions(), Source: &Source{Volume: "src"}}); KindOf(err) != KindOutOfRange {
		t.Fatalf("clone into too few inodes: %v, want OutOfRange", err)
	}
	if list, _ := tb.Snapshots("src"); len(list) != 1 || list[0].ID != "snap1" {
		t.Fatalf("snapshots %v", list)
	}
	if err := tb.DeleteSnapshot("snap1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tb.SnapshotDir("snap1")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("snapshot tree left behind")
	}
	os.Remove(filepath.Join(src.Dir(), "later"))
	sameTree(t, src.Dir(), clone.Dir()) // clones are independent copies
}
