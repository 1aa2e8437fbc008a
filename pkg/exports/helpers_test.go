package exports

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
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
