package nfsd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	adminv1 "github.com/rwxnfs/rwxnfs/api/admin/v1"
	"github.com/rwxnfs/rwxnfs/internal/rpctest"
	"github.com/rwxnfs/rwxnfs/pkg/admin"
	"github.com/rwxnfs/rwxnfs/pkg/exports"
	"github.com/rwxnfs/rwxnfs/pkg/nfsclient"
)

// TestBenchQuota measures what docs/benchmarks-quota.md reports. It runs
// only under `make bench-quota` (RWXNFS_BENCH_QUOTA=1).
func TestBenchQuota(t *testing.T) {
	if os.Getenv("RWXNFS_BENCH_QUOTA") == "" {
		t.Skip("run with make bench-quota")
	}
	t.Run("CreateVolumeWith10000", benchCreateVolume)
	t.Run("StartupWith10000", benchStartup)
	t.Run("WriteThroughput", benchWrite)
	t.Run("Reconcile100000Files", benchReconcile)
}

// seedVolumes lays out n volumes as CreateVolume would leave them (tree,
// metadata, usage), without paying n times for its fsyncs.
func seedVolumes(t *testing.T, root string, n int) {
	for _, d := range []string{"volumes", "state/volumes", "state/usage"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("seed-%05d", i)
		os.Mkdir(filepath.Join(root, "volumes", id), 0o777)
		v := map[string]any{"id": id, "fsid": uint64(i + 1), "created": time.Now().UTC(),
			"options": exports.DefaultOptions(), "limits": map[string]int64{"bytes": 1 << 30}}
		b, _ := json.Marshal(v)
		os.WriteFile(filepath.Join(root, "state", "volumes", id+".json"), b, 0o600)
		os.WriteFile(filepath.Join(root, "state", "usage", id+".json"), []byte(`{"bytes":0,"inodes":0}`), 0o600)
	}
}

func percentile(d []time.Duration, p float64) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[int(float64(len(d)-1)*p)]
}

func benchCreateVolume(t *testing.T) {
	root := t.TempDir()
	seedVolumes(t, root, 10000)
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("bench-token-0123456789"), 0o600)
	sock := "unix:" + filepath.Join(t.TempDir(), "admin.sock")
	d, err := Start(Config{Root: root, Listen: "127.0.0.1:0", Log: rpctest.Logger(t), NoReconcile: true,
		Admin: admin.Config{Listen: sock, TokenFile: tokenFile}})
	if err != nil {
		t.Fatal(err)
	}
	defer stop(t, d)
	cl, conn, err := admin.Dial(admin.ClientConfig{Addr: sock, Token: "bench-token-0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	var lat []time.Duration
	for i := 0; i < 300; i++ {
		s := time.Now()
		if _, err := cl.CreateVolume(ctx, &adminv1.CreateVolumeRequest{Name: fmt.Sprintf("new-%04d", i), RequiredBytes: 1 << 30}); err != nil {
			t.Fatal(err)
		}
		lat = append(lat, time.Since(s))
	}
	var idem []time.Duration
	for i := 0; i < 300; i++ {
		s := time.Now()
		if _, err := cl.CreateVolume(ctx, &adminv1.CreateVolumeRequest{Name: fmt.Sprintf("new-%04d", i), RequiredBytes: 1 << 30}); err != nil {
			t.Fatal(err)
		}
		idem = append(idem, time.Since(s))
	}
	t.Logf("bench CreateVolume over gRPC, 10000 volumes present, 300 calls: p50 %v p99 %v; repeated (idempotent) create: p50 %v p99 %v",
		percentile(lat, 0.5).Round(time.Microsecond), percentile(lat, 0.99).Round(time.Microsecond),
		percentile(idem, 0.5).Round(time.Microsecond), percentile(idem, 0.99).Round(time.Microsecond))
}

func benchStartup(t *testing.T) {
	root := t.TempDir()
	seedVolumes(t, root, 10000)
	for round := 0; round < 3; round++ {
		s := time.Now()
		d, err := Start(Config{Root: root, Listen: "127.0.0.1:0", Log: rpctest.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		c, err := nfsclient.Dial(context.Background(), d.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetCred(0, 0)
		fh, err := c.Mount(context.Background(), "/volumes/seed-09999")
		if err == nil {
			_, err = c.GetAttr(context.Background(), fh)
		}
		took := time.Since(s)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		t.Logf("bench start-up with 10000 volumes to first served GETATTR (round %d): %v", round, took.Round(time.Millisecond))
		stop(t, d)
	}
}

func benchWrite(t *testing.T) {
	root := t.TempDir()
	d, err := Start(Config{Root: root, Listen: "127.0.0.1:0", Log: rpctest.Logger(t), NoReconcile: true})
	if err != nil {
		t.Fatal(err)
	}
	defer stop(t, d)
	v, _, err := d.Table.CreateVolume(context.Background(), exports.CreateRequest{ID: "w", Capacity: exports.Exactly(1 << 40), Options: exports.DefaultOptions()})
	if err != nil {
		t.Fatal(err)
	}
	q := v.Quota
	const writers, perWriter = 4, 96 // MiB each
	chunk := bytes.Repeat([]byte{7}, 1<<20)
	pass := func(on bool) float64 {
		if on {
			v.Quota = q
		} else {
			v.Quota = nil // no accounting at all
		}
		var wg sync.WaitGroup
		s := time.Now()
		for w := 0; w < writers; w++ {
			c := dial(t, d, 0, 0)
			defer c.Close() // a pass's connections end with it, as a client's would
			vol := mount(t, c, "w")
			name := fmt.Sprintf("f%d", w)
			c.Remove(context.Background(), vol, name)
			fh, _, err := c.Create(context.Background(), vol, name, nfsclient.Unchecked, nfsclient.SetAttr{})
			if err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Pipelined: 8 writes in flight per connection.
				sem := make(chan struct{}, 8)
				var iw sync.WaitGroup
				for i := 0; i < perWriter; i++ {
					sem <- struct{}{}
					iw.Add(1)
					go func(i int) {
						defer func() { <-sem; iw.Done() }()
						if _, err := c.Write(context.Background(), fh, uint64(i)<<20, chunk, nfsclient.Unstable); err != nil {
							t.Error(err)
						}
					}(i)
				}
				iw.Wait()
			}()
		}
		wg.Wait()
		return float64(writers*perWriter) / time.Since(s).Seconds()
	}
	pass(true) // warm up
	var on, off []float64
	for r := 0; r < 9; r++ {
		if r%2 == 0 {
			off = append(off, pass(false))
			on = append(on, pass(true))
		} else {
			on = append(on, pass(true))
			off = append(off, pass(false))
		}
	}
	v.Quota = q
	sort.Float64s(on)
	sort.Float64s(off)
	t.Logf("bench WRITE 1 MiB UNSTABLE, %d connections x 8 in flight, median of 9 passes of %d MiB: quota on %.0f MiB/s, off %.0f MiB/s, ratio %.3f (passes on %v off %v)",
		writers, writers*perWriter, on[4], off[4], on[4]/off[4], fmtF(on), fmtF(off))
}

func fmtF(f []float64) string {
	s := ""
	for _, x := range f {
		s += fmt.Sprintf(" %.0f", x)
	}
	return s
}

func benchReconcile(t *testing.T) {
	root := t.TempDir()
	// Cold cache without dropping the whole machine's caches: the tree
	// lives on its own loop-mounted ext4, unmounted and mounted again
	// (with direct I/O to the image) before the first walk.
	img := filepath.Join(t.TempDir(), "fs.img")
	loop := exec.Command("sh", "-c", fmt.Sprintf("truncate -s 2G %s && mkfs.ext4 -q -F %s && mount -o loop %s %s", img, img, img, root)).Run() == nil
	if loop {
		defer exec.Command("umount", "-d", root).Run()
	} else {
		t.Logf("no loop mount: the cold-cache figure is not measured")
	}
	vdir := filepath.Join(root, "volumes", "big")
	const dirs, per = 100, 1000
	s := time.Now()
	for i := 0; i < dirs; i++ {
		sub := filepath.Join(vdir, fmt.Sprintf("d%03d", i))
		os.MkdirAll(sub, 0o755)
		for j := 0; j < per; j++ {
			os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%04d", j)), []byte("0123456789"), 0o644)
		}
	}
	t.Logf("made %d files in %v", dirs*per, time.Since(s).Round(time.Millisecond))
	if loop {
		// Direct I/O on the loop device, so the walk's reads reach the
		// disk instead of the page cache of the image file.
		if out, err := exec.Command("sh", "-c", fmt.Sprintf("umount %s && dev=$(losetup --direct-io=on -f --show %s) && mount $dev %s", root, img, root)).CombinedOutput(); err != nil {
			t.Fatalf("remount: %v %s", err, out)
		}
	}
	tb, err := exports.Open(exports.Config{Root: root, Log: rpctest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	v := tb.MustVolume("big")
	for r := 0; r < 3; r++ {
		s = time.Now()
		if err := tb.Reconcile(v); err != nil {
			t.Fatal(err)
		}
		took := time.Since(s)
		u := v.Quota.Usage()
		cache := "warm"
		if loop && r == 0 {
			cache = "cold"
		}
		t.Logf("bench reconcile walk of %d entries (%s cache, round %d): %v, %.0f entries/s; 1,000,000 files extrapolated: %v (usage %+v)",
			u.Inodes, cache, r, took.Round(time.Millisecond), float64(u.Inodes)/took.Seconds(),
			(took * time.Duration(1_000_000) / time.Duration(u.Inodes)).Round(time.Millisecond), u)
	}
}
