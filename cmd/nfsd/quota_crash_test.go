package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/rwxnfs/rwxnfs/pkg/nfs3/wire"
	"github.com/rwxnfs/rwxnfs/pkg/nfsclient"
)

// TestQuotaShutAfterKill9: a client writes a volume up to near its limit
// and nfsd is killed with -9 before its periodic usage save; right after
// the restart, while the usage walk is still running, a write that the
// true usage refuses must be refused. (Before the usage ceiling, the
// restarted server trusted the stale saved usage and took the volume past
// its limit by what the lost save had missed.) Once the walk ends the
// figures are exact again: the volume fills to its limit and no further.
func TestQuotaShutAfterKill9(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	token := adminToken(t, dir)
	sock := "unix:" + filepath.Join(dir, "admin.sock")
	admin := func(args ...string) {
		t.Helper()
		var out bytes.Buffer
		if code := execute(append([]string{"admin", "--addr", sock, "--token-file", token}, args...), &out, &out); code != 0 {
			t.Fatalf("nfsd admin %v: exit %d\n%s", args, code, out.String())
		}
	}
	const mib = 1 << 20
	const limit = 8 * mib
	flags := []string{"--admin-listen", sock, "--admin-token-file", token, "--no-default-volume"}
	p := startNFSD(t, root, flags...)
	admin("create", "q", "8Mi")
	ctx := context.Background()
	c := client(t, p.addr)
	vol, err := c.Mount(ctx, "/volumes/q")
	if err != nil {
		t.Fatal(err)
	}
	// A few entries for the slowed walk to take its time over.
	for _, n := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		if _, _, err := c.Create(ctx, vol, n, nfsclient.Guarded, nfsclient.SetAttr{}); err != nil {
			t.Fatal(err)
		}
	}
	f, _, err := c.Create(ctx, vol, "big", nfsclient.Guarded, nfsclient.SetAttr{})
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte{7}, mib)
	// 7 MiB in a burst (a few tens of milliseconds against a save every
	// 2 s), then the kill.
	for i := 0; i < 7; i++ {
		if _, err := c.Write(ctx, f, uint64(i)*mib, chunk, nfsclient.FileSync); err != nil {
			t.Fatal(err)
		}
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	var saved struct{ Bytes int64 }
	if b, err := os.ReadFile(filepath.Join(root, "state/usage/q.json")); err == nil {
		json.Unmarshal(b, &saved)
	}
	if saved.Bytes >= 7*mib {
		t.Skipf("the periodic save caught the whole burst (saved %d bytes): nothing stale to test", saved.Bytes)
	}

	t.Setenv("RWXNFS_TEST_WALK_DELAY", "300ms") // 9 entries: a walk of about 3 s
	p2 := startNFSD(t, root, flags...)
	c2 := client(t, p2.addr)
	// True usage 7 MiB: 1 MiB at 7.5 MiB would take it to 8.5 MiB.
	_, err = c2.Write(ctx, f, 7*mib+mib/2, chunk, nfsclient.FileSync)
	walked := p2.logged("usage reconciled with the tree")
	if err == nil {
		t.Fatalf("after kill -9 (saved usage %d bytes), a write taking the volume to %d bytes, past its limit of %d, was admitted (walk done: %v)", saved.Bytes, 8*mib+mib/2, limit, walked)
	}
	if !errors.Is(err, nfsclient.Status(wire.ErrDQuot)) {
		t.Fatalf("over-limit write: %v, want NFS3ERR_DQUOT", err)
	}
	if walked {
		t.Fatal("the walk ended before the probe: the test proved nothing (slow the walk more)")
	}

	// After the walk: exact again.
	waitLog(t, p2, "usage reconciled with the tree")
	if _, err := c2.Write(ctx, f, 7*mib, chunk, nfsclient.FileSync); err != nil {
		t.Fatalf("filling to exactly the limit after the walk: %v", err)
	}
	if _, err := c2.Write(ctx, f, limit, []byte{1}, nfsclient.FileSync); !errors.Is(err, nfsclient.Status(wire.ErrDQuot)) {
		t.Fatalf("one byte past the limit after the walk: %v, want NFS3ERR_DQUOT", err)
	}
}
