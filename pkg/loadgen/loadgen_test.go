package loadgen

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rwxnfs/rwxnfs/pkg/nfsd"
)

func tinyConfig(backing string) Config {
	return Config{Label: "rwxnfs", Conns: 2, InFlight: 4, Duration: 200 * time.Millisecond,
		SeqSize: 8 << 20, IOSize: 1 << 20, Files: 64, MetaClients: 8, DirEntries: 300,
		Backing: backing, Timeout: time.Minute}
}

// Every workload against a real nfsd, with ports from its portmapper:
// no errors, and every workload reports figures.
func TestRunAgainstNfsd(t *testing.T) {
	for _, backing := range []bool{false, true} {
		root := t.TempDir()
		d, err := nfsd.Start(nfsd.Config{Root: root, Listen: "127.0.0.1:0", PortmapListen: "127.0.0.1:0",
			DefaultVolume: "default", Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		pm := d.PortmapAddr().(*net.TCPAddr)
		tg := Target{Host: "127.0.0.1", Portmap: pm.Port, Export: "/volumes/default"}
		b := ""
		if backing {
			b = filepath.Join(root, "volumes", "default")
		}
		got := map[string]Result{}
		cfg := tinyConfig(b)
		if backing {
			cfg.Rounds = 2 // every workload repeated on the same mount
		}
		err = Run(context.Background(), tg, cfg, func(r Result) { got[r.Workload] = r })
		d.Shutdown(context.Background())
		if err != nil {
			t.Fatalf("backing=%v: %v (results %+v)", backing, err, got)
		}
		for _, w := range []string{"null", "seqwrite", "seqread", "randread", "randwrite", "create", "stat", "remove", "meta", "readdir", "lock", "lock-null"} {
			r, ok := got[w]
			if !ok || r.Error != "" || r.Ops == 0 || r.OpsPerS <= 0 {
				t.Errorf("backing=%v: %s: %+v", backing, w, r)
			}
		}
		if got["seqwrite"].Bytes != 8<<20 || got["seqread"].Bytes != 8<<20 {
			t.Errorf("sequential bytes: wrote %d read %d", got["seqwrite"].Bytes, got["seqread"].Bytes)
		}
	}
}

// The check the read workloads rely on catches misplaced and altered data.
func TestCheckCatchesBadData(t *testing.T) {
	buf, want := make([]byte, 3*blk), make([]byte, 3*blk)
	fill(buf, 8*blk)
	if err := check(buf, 8*blk, want); err != nil {
		t.Fatal(err)
	}
	if err := check(buf, 9*blk, want); err == nil {
		t.Error("data read from the wrong offset passed")
	}
	buf[blk+100] ^= 1
	if err := check(buf, 8*blk, want); err == nil || !strings.Contains(err.Error(), "offset") {
		t.Errorf("a flipped bit passed: %v", err)
	}
}

// A server that answers with an error status fails the run loudly.
func TestRunFailsOnNFSError(t *testing.T) {
	root := t.TempDir()
	d, err := nfsd.Start(nfsd.Config{Root: root, Listen: "127.0.0.1:0", DefaultVolume: "default",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown(context.Background())
	p := d.Port()
	tg := Target{Host: "127.0.0.1", NFSPort: p, MountPort: p, Export: "/volumes/nosuch"}
	if err := Run(context.Background(), tg, tinyConfig(""), func(Result) {}); err == nil {
		t.Fatal("MOUNT of a missing export succeeded")
	}
}

func TestLimits(t *testing.T) {
	cfg := tinyConfig("")
	cfg.SeqSize = 4 << 20
	d, err := OpenDirect(t.TempDir(), cfg, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var got []Result
	if err := Interleave(context.Background(), []Stepper{d}, cfg, func(r Result) { got = append(got, r) }); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"null": true, "seqwrite": true, "seqread": true, "randread": true, "randwrite": true}
	for _, r := range got {
		if !want[r.Workload] || r.Ops == 0 || r.Server != "limit" {
			t.Errorf("unexpected %+v", r)
		}
		delete(want, r.Workload)
	}
	if len(want) > 0 {
		t.Errorf("missing %v", want)
	}
}
