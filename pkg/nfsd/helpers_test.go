package nfsd

import (
	"context"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/rwxnfs/rwxnfs/internal/rpctest"
	"github.com/rwxnfs/rwxnfs/pkg/nfsclient"
	"github.com/rwxnfs/rwxnfs/pkg/rpc"
)

// start runs a real daemon on loopback over root and stops it at the end
// of the test.
func start(t testing.TB, root string) *Daemon {
	t.Helper()
	d, err := Start(Config{
		Root:          root,
		Listen:        "127.0.0.1:0",
		PortmapListen: "127.0.0.1:0",
		MetricsListen: "127.0.0.1:0",
		DefaultVolume: "default",
		Log:           rpctest.Logger(t),
	})
	if err != nil {
		t.Fatalf("start nfsd: %v", err)
	}
	t.Cleanup(func() { stop(t, d) })
	return d
}

func stop(t testing.TB, d *Daemon) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// dial connects our NFS client as uid/gid (0/0 for root).
func dial(t testing.TB, d *Daemon, uid, gid uint32) *nfsclient.Client {
	t.Helper()
	c, err := nfsclient.Dial(ctx(t), d.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetCred(uid, gid)
	t.Cleanup(func() { c.Close() })
	return c
}

// dialFrom connects from a given loopback source address.
func dialFrom(t *testing.T, d *Daemon, src string) *nfsclient.Client {
	t.Helper()
	dl := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	conn, err := dl.DialContext(ctx(t), "tcp", d.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := &nfsclient.Client{RPC: rpc.NewClient(conn)}
	c.SetCred(0, 0)
	t.Cleanup(func() { c.Close() })
	return c
}

func mount(t *testing.T, c *nfsclient.Client, vol string) []byte {
	t.Helper()
	fh, err := c.Mount(ctx(t), "/volumes/"+vol)
	if err != nil {
		t.Fatalf("mount %s: %v", vol, err)
	}
	return fh
}

// need returns the path of a client tool, failing the test when it is
// missing under `make test` (RWXNFS_STRICT=1), which installs it, and
// skipping otherwise.
func need(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv("RWXNFS_STRICT") != "" {
			t.Fatalf("%s not installed (make deps installs it)", tool)
		}
		t.Skipf("%s not installed; run make deps", tool)
	}
	return p
}
