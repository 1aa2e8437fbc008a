package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rwxnfs/rwxnfs/pkg/admin"
	"github.com/rwxnfs/rwxnfs/pkg/locking"
	"github.com/rwxnfs/rwxnfs/pkg/nfsclient"
	"github.com/rwxnfs/rwxnfs/pkg/nfsd"
	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// lockAs sends a non-blocking exclusive NLM4 LOCK of the whole file as
// process svid on host caller.
func lockAs(t *testing.T, c *nfsclient.Client, fh []byte, caller string, svid int32) locking.Stat {
	t.Helper()
	args := locking.LockArgs{Cookie: []byte{1}, Exclusive: true,
		Lock: locking.Lock4{CallerName: caller, FH: fh, OH: []byte(caller), Svid: svid}}
	b, err := c.RPC.Call(context.Background(), locking.NLMProg, locking.NLMVers, locking.ProcLock, args.Encode)
	if err != nil {
		t.Fatalf("NLM LOCK: %v", err)
	}
	var res locking.Res
	if err := res.Decode(xdr.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	return res.Stat
}

// startWithAdmin runs a real daemon serving the admin API on a unix
// socket, and returns a runner of `nfsd admin` against it; the token is in
// dir/token.
func startWithAdmin(t *testing.T, noLocking bool) (d *nfsd.Daemon, dir string, run func(want int, args ...string) string) {
	dir = t.TempDir()
	token := filepath.Join(dir, "token")
	os.WriteFile(token, []byte("locks-test-token-0123456789\n"), 0o600)
	sock := "unix:" + filepath.Join(dir, "admin.sock")
	d, err := nfsd.Start(nfsd.Config{
		Root: filepath.Join(dir, "root"), Listen: "127.0.0.1:0", DefaultVolume: "default",
		NoLocking: noLocking, NoReconcile: true,
		Log:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Admin: admin.Config{Listen: sock, TokenFile: token},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		d.Shutdown(ctx)
	})
	return d, dir, func(want int, args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		full := append([]string{"admin", "--addr", sock, "--token-file", token}, args...)
		if code := execute(full, &out, &errb); code != want {
			t.Fatalf("nfsd admin %v: exit %d, want %d\n%s%s", args, code, want, out.String(), errb.String())
		}
		return out.String() + errb.String()
	}
}

// An operator sees who holds which lock on which file (by its current
// path), and releases the locks of a node that died so the others proceed.
func TestAdminLocks(t *testing.T) {
	d, _, run := startWithAdmin(t, false)
	ctx := context.Background()
	c, err := nfsclient.Dial(ctx, d.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetCred(0, 0)
	root, err := c.Mount(ctx, "/volumes/default")
	if err != nil {
		t.Fatal(err)
	}
	dir, _, err := c.Mkdir(ctx, root, "logs", nfsclient.SetAttr{})
	if err != nil {
		t.Fatal(err)
	}
	f, _, err := c.Create(ctx, dir, "app.log", nfsclient.Guarded, nfsclient.SetAttr{})
	if err != nil {
		t.Fatal(err)
	}
	lockedAt := time.Now()
	if st := lockAs(t, c, f, "node-a", 41); st != locking.StatGranted {
		t.Fatalf("node-a LOCK: %v", st)
	}
	if err := c.Rename(ctx, dir, "app.log", dir, "app.log.1"); err != nil {
		t.Fatal(err)
	}
	if st := lockAs(t, c, f, "node-b", 7); st != locking.StatDenied {
		t.Fatalf("node-b LOCK while node-a holds it: %v, want DENIED", st)
	}

	out := run(0, "locks", "list", "volume=default")
	if !strings.Contains(out, "/logs/app.log.1") || !strings.Contains(out, "node-a") || !strings.Contains(out, "exclusive") || !strings.Contains(out, "EOF") {
		t.Fatalf("locks list does not show node-a's lock on the renamed file:\n%s", out)
	}
	if out := run(0, "locks", "list", "client=node-b"); strings.Contains(out, "node-a") {
		t.Fatalf("locks list client=node-b shows node-a's lock:\n%s", out)
	}
	if out := run(0, "-o", "json", "locks", "list"); !strings.Contains(out, `"client": "node-a"`) || !strings.Contains(out, `"path": "/logs/app.log.1"`) {
		t.Fatalf("locks list -o json:\n%s", out)
	}
	// How long it has been held: since the LOCK call above.
	var ls []struct{ HeldSince time.Time }
	if err := json.Unmarshal([]byte(run(0, "locks", "list", "-o", "json", "client=node-a")), &ls); err != nil || len(ls) != 1 ||
		ls[0].HeldSince.Before(lockedAt) || ls[0].HeldSince.After(time.Now()) {
		t.Fatalf("heldSince: %+v %v, want between %v and now", ls, err, lockedAt)
	}
	if out := run(0, "locks", "list"); !strings.Contains(out, "HELD") {
		t.Fatalf("locks list has no HELD column:\n%s", out)
	}
	if out := run(0, "locks", "clients"); !strings.Contains(out, "node-a") {
		t.Fatalf("locks clients:\n%s", out)
	}

	if out := run(0, "locks", "release", "node-a"); !strings.Contains(out, "released 1 ") {
		t.Fatalf("locks release: %s", out)
	}
	if st := lockAs(t, c, f, "node-b", 7); st != locking.StatGranted {
		t.Fatalf("node-b LOCK after node-a's locks were released: %v, want GRANTED", st)
	}
	if out := run(0, "locks", "release", "node-a"); !strings.Contains(out, "released 0 ") {
		t.Fatalf("releasing a client with nothing: %s", out)
	}
	run(2, "locks", "release")
	if out := run(2, "locks", "list", "bogus=1"); !strings.Contains(out, "want volume=") {
		t.Fatalf("bad filter: %s", out)
	}
}

func TestAdminLocksWithoutLocking(t *testing.T) {
	_, _, run := startWithAdmin(t, true)
	if out := run(1, "locks", "list"); !strings.Contains(out, "FailedPrecondition") || !strings.Contains(out, "--no-locking") {
		t.Fatalf("locks list with --no-locking: %s", out)
	}
}
