package nfsd

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/rwxnfs/rwxnfs/pkg/nfsclient"
)

func TestWriteStabilityAndVerifier(t *testing.T) {
	root := t.TempDir()
	d := start(t, root)
	c := dial(t, d, 0, 0)
	ctx := ctx(t)
	vol := mount(t, c, "default")
	f, _, err := c.Create(ctx, vol, "f", nfsclient.Guarded, nfsclient.SetAttr{})
	if err != nil {
		t.Fatal(err)
	}
	for _, stable := range []uint32{nfsclient.Unstable, nfsclient.DataSync, nfsclient.FileSync} {
		res, err := c.Write(ctx, f, 0, []byte("data"), stable)
		if err != nil {
			t.Fatal(err)
		}
		// Never more durability than asked for, never less than done.
		if res.Committed != stable {
			t.Fatalf("WRITE stable=%d replied committed=%d", stable, res.Committed)
		}
	}
	w1, _ := c.Write(ctx, f, 0, []byte("data"), nfsclient.Unstable)
	cv, err := c.Commit(ctx, f)
	if err != nil || cv != w1.Verifier {
		t.Fatalf("COMMIT verifier %x differs from WRITE's %x (%v)", cv, w1.Verifier, err)
	}
	stop(t, d)
	d2 := start(t, root)
	c2 := dial(t, d2, 0, 0)
	w2, err := c2.Write(ctx, f, 0, []byte("data"), nfsclient.Unstable)
	if err != nil {
		t.Fatal(err)
	}
	if w2.Verifier == w1.Verifier {
		t.Fatal("the write verifier did not change across a restart: clients would not resend lost UNSTABLE writes")
	}
}

// TestManyCallsInFlight keeps 64 calls in flight on one connection, mixing
// 1 MiB READs with GETATTRs, and checks every reply.
func TestManyCallsInFlight(t *testing.T) {
	root := t.TempDir()
	d := start(t, root)
	c := dial(t, d, 0, 0)
	ctx := ctx(t)
	vol := mount(t, c, "default")
	f, _, err := c.Create(ctx, vol, "f", nfsclient.Guarded, nfsclient.SetAttr{})
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte{0xab}, 1<<20)
	for i := 0; i < 4; i++ {
		if _, err := c.Write(ctx, f, uint64(i)<<20, chunk, nfsclient.Unstable); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64*4)
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 4; i++ {
				if g%2 == 0 {
					data, _, err := c.Read(ctx, f, uint64(i)<<20, 1<<20)
					if err == nil && !bytes.Equal(data, chunk) {
						err = fmt.Errorf("READ %d returned wrong data", i)
					}
					errs <- err
				} else {
					a, err := c.GetAttr(ctx, f)
					if err == nil && a.Size != 4<<20 {
						err = fmt.Errorf("GETATTR size %d", a.Size)
					}
					errs <- err
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestMetricsAndHealth(t *testing.T) {
	d := start(t, t.TempDir())
	c := dial(t, d, 0, 0)
	ctx := ctx(t)
	vol := mount(t, c, "default")
	if _, err := c.GetAttr(ctx, vol); err != nil {
		t.Fatal(err)
	}
	c.Lookup(ctx, vol, "missing") // one NOENT
	get := func(path string) string {
		resp, err := http.Get("http://" + d.MetricsAddr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %s", path, resp.Status)
		}
		return string(b)
	}
	if got := get("/healthz"); got != "ok\n" {
		t.Fatalf("/healthz: %q", got)
	}
	m := get("/metrics")
	for _, want := range []string{
		`rwxnfs_rpc_calls_total{procedure="GetAttr",program="nfs"} 1`,
		`rwxnfs_rpc_calls_total{procedure="Mnt",program="mount"} 1`,
		`rwxnfs_nfs_errors_total{procedure="Lookup",status="NFS3ERR_NOENT"} 1`,
		`rwxnfs_rpc_duration_seconds_bucket{procedure="GetAttr",program="nfs"`,
		`rwxnfs_connections_open 1`,
		`rwxnfs_written_bytes_total`,
		`rwxnfs_rpc_replies_unsent 0`,
		`rwxnfs_rpc_reclaimed_connections_total 0`,
		`rwxnfs_rpc_stalled_claims_total 0`,
		`rwxnfs_rpc_udp_dropped_total 0`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
