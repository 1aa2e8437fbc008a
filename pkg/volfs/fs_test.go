package volfs

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rwxnfs/rwxnfs/pkg/exports"
)

// A rename within one directory fsyncs it once even when its handle was
// resolved to two nodes (the first evicted from the cache before the
// second was opened); two directories are two fsyncs.
func TestSameNode(t *testing.T) {
	a := &exports.Node{Handle: []byte{1, 2, 3}}
	again := &exports.Node{Handle: []byte{1, 2, 3}}
	other := &exports.Node{Handle: []byte{1, 2, 4}}
	if !sameNode(a, a) || !sameNode(a, again) {
		t.Error("one directory resolved twice is not the same node")
	}
	if sameNode(a, other) {
		t.Error("two directories are the same node")
	}
}

// chmodFD and utimesFD change the inode an O_PATH descriptor holds (on
// this kernel directly, else through /proc).
func TestChmodAndUtimesThroughOPath(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(p, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := chmodFD(fd, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := utimesFD(fd, []unix.Timespec{{Sec: 1000}, {Sec: 2000, Nsec: 5}}); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&0o7777 != 0o600 || st.Atim.Sec != 1000 || st.Mtim.Sec != 2000 || st.Mtim.Nsec != 5 {
		t.Fatalf("mode %o atime %d mtime %d.%d", st.Mode&0o7777, st.Atim.Sec, st.Mtim.Sec, st.Mtim.Nsec)
	}
}
