package exports

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openTable(t *testing.T, root string) *Table {
	t.Helper()
	tb, err := Open(Config{Root: root, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tb.Close() })
	return tb
}

func TestCreateVolumeIdempotent(t *testing.T) {
	tb := openTable(t, t.TempDir())
	req := CreateRequest{ID: "pvc-1", Capacity: Exactly(1 << 30), InodeLimit: 1000, Options: DefaultOptions(), Root: RootAttrs{UID: 1000, GID: 2000, Mode: 0o2770}}
	v, existed, err := tb.CreateVolume(context.Background(), req)
	if err != nil || existed {
		t.Fatalf("create: %v existed=%v", err, existed)
	}
	var st unix.Stat_t
	if err := unix.Lstat(v.Dir(), &st); err != nil || st.Uid != 1000 || st.Gid != 2000 || st.Mode&0o7777 != 0o2770 {
		t.Fatalf("root: %v uid %d gid %d mode %o", err, st.Uid, st.Gid, st.Mode&0o7777)
	}
	v2, existed, err := tb.CreateVolume(context.Background(), req)
	if err != nil || !existed || v2 != v {
		t.Fatalf("repeat: %v existed=%v same=%v", err, existed, v2 == v)
	}
	bigger := req
	bigger.Capacity = Exactly(2 << 30)
	if _, _, err := tb.CreateVolume(context.Background(), bigger); KindOf(err) != KindExists {
		t.Fatalf("incompatible size: %v, want KindExists", err)
	}
	other := req
	other.Options.ReadOnly = true
	if _, _, err := tb.CreateVolume(context.Background(), other); KindOf(err) != KindExists {
		t.Fatalf("incompatible options: %v, want KindExists", err)
	}
	for _, bad := range []CreateRequest{
		{ID: "../x"}, {ID: "ok", Capacity: CapacityRange{Required: -1}}, {ID: "ok", Options: Options{Squash: "maybe"}},
		{ID: "ok", Options: DefaultOptions(), Root: RootAttrs{Mode: 0o17777}},
		{ID: "ok", Options: DefaultOptions(), Source: &Source{Snapshot: "a", Volume: "b"}},
	} {
		if _, _, err := tb.CreateVolume(context.Background(), bad); KindOf(err) != KindInvalid {
			t.Errorf("%+v: %v, want KindInvalid", bad, err)
		}
	}
	if _, _, err := tb.CreateVolume(context.Background(), CreateRequest{ID: "x", Options: DefaultOptions(), Source: &Source{Snapshot: "nope"}}); KindOf(err) != KindNotFound {
		t.Fatalf("missing snapshot: %v", err)
	}
	// Survives a restart with its parameters.
	tb.Close()
	tb2 := openTable(t, filepath.Dir(filepath.Dir(v.Dir())))
	if _, existed, err := tb2.CreateVolume(context.Background(), req); err != nil || !existed {
		t.Fatalf("after restart: %v existed=%v", err, existed)
	}
	if l := tb2.MustVolume("pvc-1").Quota.Limits(); l.Bytes != 1<<30 || l.Inodes != 1000 {
		t.Fatalf("limits after restart %+v", l)
	}
}

func TestDeleteModes(t *testing.T) {
	root := t.TempDir()
	tb := openTable(t, root)
	for _, id := range []string{"a", "b", "c"} {
		v, _, err := tb.CreateVolume(context.Background(), CreateRequest{ID: id, Options: DefaultOptions()})
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(v.Dir(), "data"), []byte(id), 0o644)
	}
	a := tb.MustVolume("a")
	h := a.Root().Handle
	if res, err := tb.DeleteVolume("a", ReclaimDelete); err != nil || res.Path != "" {
		t.Fatal(res, err)
	}
	if _, err := tb.Resolve(h); !errors.Is(err, ErrStale) {
		t.Fatalf("handle of a deleted volume: %v, want stale", err)
	}
	if _, err := os.Stat(filepath.Join(root, "volumes", "a")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("tree still there: %v", err)
	}
	res, err := tb.DeleteVolume("b", ReclaimRetain)
	if err != nil || res.Path != filepath.Join(root, "retained", "b") {
		t.Fatal(res, err)
	}
	if got, _ := os.ReadFile(filepath.Join(res.Path, "data")); string(got) != "b" {
		t.Fatalf("retained data %q", got)
	}
	res, err = tb.DeleteVolume("c", ReclaimArchive)
	if err != nil || !strings.HasPrefix(res.Path, filepath.Join(root, "archive", "c-")) {
		t.Fatal(res, err)
	}
	if got, _ := os.ReadFile(filepath.Join(res.Path, "data")); string(got) != "c" {
		t.Fatalf("archived data %q", got)
	}
	if _, err := os.Stat(res.Path + ".json"); err != nil {
		t.Fatalf("archived metadata: %v", err)
	}
	if _, err := tb.DeleteVolume("a", ReclaimDelete); KindOf(err) != KindNotFound {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := tb.DeleteVolume("b", "shred"); KindOf(err) != KindInvalid {
		t.Fatalf("bad mode: %v", err)
	}
	tb.Close()
	if tb2 := openTable(t, root); len(tb2.Volumes()) != 0 {
		t.Fatalf("deleted volumes came back: %v", tb2.Volumes())
	}
}

// makeRichTree fills dir with everything the copier must keep.
func makeRichTree(t *testing.T, dir string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	p := func(s string) string { return filepath.Join(dir, s) }
	must(os.MkdirAll(p("a/b/c"), 0o755))
	must(os.WriteFile(p("a/file"), []byte("hello"), 0o644))
	must(os.WriteFile(p("a/b/setuid"), []byte("#!/bin/sh\n"), 0o755))
	must(os.Chown(p("a/b/setuid"), 1234, 5678))
	must(os.Chmod(p("a/b/setuid"), 0o4755|fs.ModeSetuid))
	must(unix.Chmod(p("a/b/setuid"), 0o4755))
	must(os.Chown(p("a/b"), 42, 43))
	must(unix.Chmod(p("a/b"), 0o2750))
	must(os.Symlink("../file", p("a/b/link")))
	must(os.Lchown(p("a/b/link"), 7, 8))
	must(os.Link(p("a/file"), p("a/b/c/hard")))
	must(unix.Mkfifo(p("fifo"), 0o640))
	// Sparse: 4 KiB of data at 0 and at 8 MiB, a 16 MiB apparent size.
	f, err := os.Create(p("sparse"))
	must(err)
	_, err = f.WriteAt(bytes.Repeat([]byte{1}, 4096), 0)
	must(err)
	_, err = f.WriteAt(bytes.Repeat([]byte{2}, 4096), 8<<20)
	must(err)
	must(f.Truncate(16 << 20))
	must(f.Close())
	old := time.Date(2001, 2, 3, 4, 5, 6, 7, time.UTC)
	for _, q := range []string{"a/file", "a/b/setuid", "sparse", "fifo", "a/b/c", "a/b", "a"} {
		must(os.Chtimes(p(q), old, old))
	}
	must(unix.Lutimes(p("a/b/link"), []unix.Timeval{{Sec: old.Unix()}, {Sec: old.Unix()}}))
	must(os.Chtimes(p("a/b"), old, old)) // after the link was made in it
}

// sameTree compares two trees: types, owners, modes, sizes, mtimes,
// contents, symlink targets, hard-link structure and holes.
func sameTree(t *testing.T, a, b string) {
	t.Helper()
	inoA, inoB := map[uint64]string{}, map[uint64]string{}
	n := 0
	err := filepath.WalkDir(a, func(pa string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(a, pa)
		pb := filepath.Join(b, rel)
		var sa, sb unix.Stat_t
		if err := unix.Lstat(pa, &sa); err != nil {
			return err
		}
		if err := unix.Lstat(pb, &sb); err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		n++
		if sa.Mode != sb.Mode || sa.Uid != sb.Uid || sa.Gid != sb.Gid || sa.Nlink != sb.Nlink {
			return fmt.Errorf("%s: mode %o/%o uid %d/%d gid %d/%d nlink %d/%d", rel, sa.Mode, sb.Mode, sa.Uid, sb.Uid, sa.Gid, sb.Gid, sa.Nlink, sb.Nlink)
		}
		if sa.Mode&unix.S_IFMT != unix.S_IFDIR && sa.Size != sb.Size {
			return fmt.Errorf("%s: size %d/%d", rel, sa.Size, sb.Size)
		}
		if rel != "." && sa.Mtim != sb.Mtim {
			return fmt.Errorf("%s: mtime %v/%v", rel, sa.Mtim, sb.Mtim)
		}
		if sa.Nlink > 1 && sa.Mode&unix.S_IFMT != unix.S_IFDIR {
			fa, okA := inoA[sa.Ino]
			fb, okB := inoB[sb.Ino]
			if okA != okB || fa != fb {
				return fmt.Errorf("%s: hard links differ (%q %q)", rel, fa, fb)
			}
			if !okA {
				inoA[sa.Ino], inoB[sb.Ino] = rel, rel
			}
		}
		switch sa.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			ta, _ := os.Readlink(pa)
			tb, _ := os.Readlink(pb)
			if ta != tb {
				return fmt.Errorf("%s: link %q/%q", rel, ta, tb)
			}
		case unix.S_IFREG:
			da, _ := os.ReadFile(pa)
			db, _ := os.ReadFile(pb)
			if !bytes.Equal(da, db) {
				return fmt.Errorf("%s: contents differ", rel)
			}
			if ea, eb := extents(t, pa), extents(t, pb); fmt.Sprint(ea) != fmt.Sprint(eb) {
				return fmt.Errorf("%s: data extents %v / %v", rel, ea, eb)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Nothing extra in b.
	m := 0
	filepath.WalkDir(b, func(string, fs.DirEntry, error) error { m++; return nil })
	if m != n {
		t.Fatalf("%d entries in the copy, %d in the source", m, n)
	}
}

// extents lists a file's data segments by SEEK_DATA/SEEK_HOLE.
func extents(t *testing.T, p string) [][2]int64 {
	fd, err := unix.Open(p, unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	unix.Fstat(fd, &st)
	var out [][2]int64
	for off := int64(0); off < st.Size; {
		d, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if err != nil {
			break
		}
		h, _ := unix.Seek(fd, d, unix.SEEK_HOLE)
		out = append(out, [2]int64{d, h})
		off = h
	}
	return out
}

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

// Crash injection: a helper process (this test binary, re-executed) runs
// one lifecycle operation with CrashEnv set, and kills itself with
// SIGKILL at that step. The table opened afterwards must be consistent:
// no intent left, no staging or trash directory, and the operation either
// complete or absent.
func TestCrashRecovery(t *testing.T) {
	if os.Getenv("RWXNFS_CRASH_HELPER") != "" {
		return
	}
	points := []struct{ op, point string }{
		{"create", "create:intent"}, {"create", "create:mkdir"}, {"create", "create:populated"},
		{"create", "create:meta"}, {"create", "create:renamed"},
		{"delete", "delete:intent"}, {"delete", "delete:renamed"}, {"delete", "delete:meta"},
		{"retain", "delete:renamed"}, {"retain", "delete:meta"},
		{"snapshot", "snapshot:intent"}, {"snapshot", "snapshot:copied"}, {"snapshot", "snapshot:meta"},
		{"snapdelete", "snapdelete:renamed"},
	}
	for _, p := range points {
		t.Run(p.op+"@"+p.point, func(t *testing.T) {
			root := t.TempDir()
			tb := openTable(t, root)
			v, _, err := tb.CreateVolume(context.Background(), CreateRequest{ID: "base", Options: DefaultOptions()})
			if err != nil {
				t.Fatal(err)
			}
			makeRichTree(t, v.Dir())
			if p.op == "snapdelete" {
				if err := snapshotAndWait(tb, "s", "base"); err != nil {
					t.Fatal(err)
				}
			}
			tb.Close()
			cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$")
			cmd.Env = append(os.Environ(), "RWXNFS_CRASH_HELPER="+p.op, "RWXNFS_CRASH_ROOT="+root, CrashEnv+"="+p.point)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("helper did not die at %s: %v\n%s", p.point, err, out)
			}
			tb2 := openTable(t, root)
			if p.op == "snapshot" {
				// A snapshot recorded before the crash is copied again.
				s, err := waitSnapshot(tb2, "s")
				if err != nil {
					t.Fatalf("snapshot after the crash: %v", err)
				}
				sameTree(t, tb2.MustVolume("base").Dir(), tb2.SnapshotDir(s.ID))
			}
			leftovers := func(dir string) {
				ents, _ := os.ReadDir(dir)
				for _, e := range ents {
					if strings.HasPrefix(e.Name(), ".") {
						t.Errorf("left behind: %s/%s", dir, e.Name())
					}
				}
			}
			leftovers(filepath.Join(root, "volumes"))
			leftovers(filepath.Join(root, "snapshots"))
			if ents, _ := os.ReadDir(filepath.Join(root, "state", "intents")); len(ents) != 0 {
				t.Errorf("intent records left: %v", ents)
			}
			switch p.op {
			case "create":
				nv, ok := tb2.Volume("new")
				_, metaErr := os.Stat(filepath.Join(root, "state", "volumes", "new.json"))
				if ok {
					sameTree(t, v.Dir(), nv.Dir())
				} else if metaErr == nil {
					t.Error("rolled-back volume kept its metadata")
				}
				if p.point == "create:renamed" && !ok {
					t.Error("a creation past its commit point was lost")
				}
			case "delete", "retain":
				if _, ok := tb2.Volume("base"); ok {
					t.Error("a recorded deletion was not finished")
				}
				if _, err := os.Stat(filepath.Join(root, "state", "volumes", "base.json")); err == nil {
					t.Error("metadata of a deleted volume left")
				}
				if p.op == "retain" {
					sameTreeAt(t, root, filepath.Join(root, "retained", "base"))
				}
			case "snapdelete":
				if _, err := tb2.Snapshot("s"); err == nil {
					t.Error("a recorded snapshot deletion was not finished")
				}
			}
			// The table still works.
			if _, _, err := tb2.CreateVolume(context.Background(), CreateRequest{ID: "after", Options: DefaultOptions()}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// sameTreeAt checks a retained tree against a fresh copy of the rich tree.
func sameTreeAt(t *testing.T, root, dir string) {
	ref := filepath.Join(root, "ref")
	os.Mkdir(ref, 0o777)
	makeRichTree(t, ref)
	var sa, sb unix.Stat_t
	unix.Lstat(filepath.Join(ref, "sparse"), &sa)
	if err := unix.Lstat(filepath.Join(dir, "sparse"), &sb); err != nil || sa.Size != sb.Size {
		t.Errorf("retained tree incomplete: %v", err)
	}
}

// TestCrashHelper is the re-executed side of TestCrashRecovery.
func TestCrashHelper(t *testing.T) {
	op := os.Getenv("RWXNFS_CRASH_HELPER")
	if op == "" {
		t.Skip("only runs re-executed by TestCrashRecovery")
	}
	tb := openTable(t, os.Getenv("RWXNFS_CRASH_ROOT"))
	var err error
	switch op {
	case "create":
		_, _, err = tb.CreateVolume(context.Background(), CreateRequest{ID: "new", Options: DefaultOptions(), Source: &Source{Volume: "base"}})
	case "delete":
		_, err = tb.DeleteVolume("base", ReclaimDelete)
	case "retain":
		_, err = tb.DeleteVolume("base", ReclaimRetain)
	case "snapshot":
		err = snapshotAndWait(tb, "s", "base")
	case "snapdelete":
		err = tb.DeleteSnapshot("s")
	}
	t.Fatalf("helper survived %s: %v", op, err)
}
