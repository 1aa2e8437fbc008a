package fscred

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func needRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

// TestDoCreatesAsCaller: files made inside Do belong to the caller, and
// the kernel refuses what the caller may not do.
func TestDoCreatesAsCaller(t *testing.T) {
	needRoot(t)
	dir := openDir(t)
	err := Do(Cred{UID: 1000, GID: 1000}, func() error {
		return os.WriteFile(filepath.Join(dir, "mine"), nil, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	st := stat(t, filepath.Join(dir, "mine"))
	if st.Uid != 1000 || st.Gid != 1000 {
		t.Fatalf("owner %d:%d", st.Uid, st.Gid)
	}
	private := filepath.Join(dir, "private")
	os.Mkdir(private, 0o700)
	err = Do(Cred{UID: 1000, GID: 1000}, func() error {
		return os.WriteFile(filepath.Join(private, "x"), nil, 0o644)
	})
	if !os.IsPermission(err) {
		t.Fatalf("create in root's 0700 dir as 1000: %v, want EACCES", err)
	}
	// Supplementary groups count.
	os.Chown(private, 0, 4242)
	os.Chmod(private, 0o770)
	err = Do(Cred{UID: 1000, GID: 1000, Groups: []uint32{4242}}, func() error {
		return os.WriteFile(filepath.Join(private, "y"), nil, 0o644)
	})
	if err != nil {
		t.Fatalf("create via supplementary group: %v", err)
	}
}

// TestDoLeavesNoTrace: after many concurrent Do calls with different
// identities, files made outside Do are still root's, and each file made
// inside Do has its own caller as owner — no identity leaks between
// goroutines or outlives its call.
func TestDoLeavesNoTrace(t *testing.T) {
	needRoot(t)
	dir := openDir(t)
	var wg sync.WaitGroup
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				uid := uint32(2000 + g)
				name := filepath.Join(dir, fmt.Sprintf("g%d-%d", g, i))
				if err := Do(Cred{UID: uid, GID: uid}, func() error { return os.WriteFile(name, nil, 0o644) }); err != nil {
					t.Error(err)
					return
				}
				rootName := name + "-root"
				if err := os.WriteFile(rootName, nil, 0o644); err != nil {
					t.Error(err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	for g := 0; g < 32; g++ {
		for i := 0; i < 50; i++ {
			name := filepath.Join(dir, fmt.Sprintf("g%d-%d", g, i))
			if st := stat(t, name); st.Uid != uint32(2000+g) {
				t.Fatalf("%s owned by %d, want %d", name, st.Uid, 2000+g)
			}
			if st := stat(t, name+"-root"); st.Uid != 0 || st.Gid != 0 {
				t.Fatalf("%s-root owned by %d:%d: a caller identity leaked", name, st.Uid, st.Gid)
			}
		}
	}
	// This thread and the process keep root's credentials.
	if uid, _ := unix.SetfsuidRetUid(-1); uid != 0 {
		t.Fatalf("fsuid after Do calls is %d", uid)
	}
}

func stat(t *testing.T, p string) *syscall.Stat_t {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t)
}

// openDir makes a world-writable directory that every uid can reach.
func openDir(t *testing.T) string {
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o777)
	return dir
}
