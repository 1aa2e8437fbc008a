package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rwxnfs/rwxnfs/e2e/internal/record"
)

// TestRestartDuringIO: nfsd is killed with SIGKILL and restarted (same
// root, same port) twice while both nodes write fsync'ed records and
// re-read their own, each other's and a pre-existing file. No node may
// see ESTALE (handles survive restarts) and every record whose fsync
// returned must be on the server's disk.
func TestRestartDuringIO(t *testing.T) {
	b := newBed(t, 2)
	dir := b.volPath("default") + "/io"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/stable", []byte("made before the run, read through it\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, n := range b.nodes {
		n.mount("default", "vers=3")
	}
	const dur = 45 * time.Second
	chans := make([]<-chan result, len(b.nodes))
	for i, n := range b.nodes {
		chans[i] = n.start(fmt.Sprintf("e2enode io -dir /mnt/default/io -dur %s -size 128", dur))
	}
	sizeNow := func() int64 {
		var s int64
		for _, n := range b.nodes {
			if st, err := os.Stat(dir + "/" + n.name + ".dat"); err == nil {
				s += st.Size()
			}
		}
		return s
	}
	var atLastRestart int64
	for i := 1; i <= 2; i++ {
		time.Sleep(10 * time.Second)
		before := sizeNow()
		if before == 0 {
			t.Fatalf("no I/O reached the server before restart %d", i)
		}
		d := b.restartNFSD()
		atLastRestart = sizeNow()
		t.Logf("restart %d: nfsd killed -9 and restarted in %v (%d bytes of records on disk)", i, d.Round(time.Millisecond), before)
	}
	committed := map[string]int{}
	for i, c := range chans {
		var r result
		select {
		case r = <-c:
		case <-time.After(dur + 5*time.Minute):
			t.Fatalf("%s: io did not finish", b.nodes[i].name)
		}
		name := b.nodes[i].name
		for _, l := range strings.Split(r.out, "\n") {
			if strings.HasPrefix(l, "IO ") || strings.HasPrefix(l, "IOGAP ") || strings.HasPrefix(l, "ERROR") {
				t.Logf("%s: %s", name, l)
			}
		}
		if r.err != nil || r.rc != 0 || strings.Contains(r.out, "ESTALE") {
			t.Errorf("%s: rc=%d err=%v (ESTALE: %v)\n%s", name, r.rc, r.err, strings.Contains(r.out, "ESTALE"), r.out)
		}
		m := regexp.MustCompile(`IO \S+ committed=(\d+)`).FindStringSubmatch(r.out)
		if m == nil {
			t.Fatalf("%s: no IO summary in %q", name, r.out)
		}
		committed[name], _ = strconv.Atoi(m[1])
	}
	if sizeNow() <= atLastRestart {
		t.Errorf("no I/O completed after the restarts (%d bytes, %d at the restart)", sizeNow(), atLastRestart)
	}
	for name, c := range committed {
		data, err := os.ReadFile(dir + "/" + name + ".dat")
		if err != nil {
			t.Fatal(err)
		}
		r := record.Verify(data, 128, map[string]int{name: c})
		t.Logf("%s: %d fsync'ed records; on the server: %v", name, c, r)
		if !r.OK() {
			t.Errorf("%s: committed data lost or damaged across restarts: %v", name, r)
		}
	}
}

// TestLockedAppendsAcrossServerRestart (issue 5): the fcntl-locked run,
// with nfsd killed -9 and restarted once a quarter of the records are
// in. nfsd's NSM tells the clients (SM_NOTIFY), they reclaim their locks
// in the grace period, and the run must still end with every record
// exactly once, in order, and no ESTALE.
func TestLockedAppendsAcrossServerRestart(t *testing.T) {
	n := appendRecords()
	b := lockedAppends(t, "fcntl", 4, n, func(b *bed) {
		total := int64(2 * 4 * n * recSize)
		deadline := time.Now().Add(5 * time.Minute)
		for time.Now().Before(deadline) {
			st, err := os.Stat(b.volPath("default") + "/app-fcntl.dat")
			if err == nil && st.Size() >= total/4 {
				d := b.restartNFSD()
				st2, _ := os.Stat(b.volPath("default") + "/app-fcntl.dat")
				b.t.Logf("nfsd killed -9 at %d of %d bytes, restarted in %v", st.Size(), total, d.Round(time.Millisecond))
				go func() {
					// Log when appends resume, i.e. how long grace and reclaim took.
					t0 := time.Now()
					for time.Since(t0) < 3*time.Minute {
						if s, err := os.Stat(b.volPath("default") + "/app-fcntl.dat"); err == nil && s.Size() > st2.Size() {
							logf("%s: appends resumed %v after restart", b.t.Name(), time.Since(t0).Round(100*time.Millisecond))
							return
						}
						time.Sleep(100 * time.Millisecond)
					}
				}()
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		b.t.Errorf("the run never reached a quarter of its records")
	}, false)
	// The restarted nfsd must have told both clients (SM_NOTIFY), and its
	// grace period must have ended because they reclaimed, not by timeout.
	log, err := os.ReadFile(filepath.Join(b.logDir, "nfsd.2.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range b.nodes {
		if !regexp.MustCompile(`"told client of our restart".*"client":"` + n.name + `"`).Match(log) {
			t.Errorf("restarted nfsd did not notify %s (see %s/nfsd.2.log)", n.name, b.logDir)
		}
	}
	if m := regexp.MustCompile(`"grace period over".*"why":"([^"]*)"`).FindSubmatch(log); m == nil {
		t.Errorf("no end of grace in nfsd.2.log")
	} else {
		t.Logf("grace period over: %s", m[1])
	}
}
