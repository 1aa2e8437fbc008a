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
// root, same port) twice, each time once both nodes have made progress,
// while both nodes write fsync'ed records and
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
	// The writers run in the background until told to stop, so the host
	// can restart nfsd whenever it sees progress, however slow the nodes.
	for _, n := range b.nodes {
		n.must("e2enode io -dir /mnt/default/io -size 128 > /tmp/io.log 2>&1 &", 30*time.Second)
	}
	records := func(n *node) int64 {
		st, err := os.Stat(dir + "/" + n.name + ".dat")
		if err != nil {
			return 0
		}
		return st.Size() / 128
	}
	// progress waits until every node has fsync'ed 150 more records.
	progress := func(what string) {
		base := make([]int64, len(b.nodes))
		for i, n := range b.nodes {
			base[i] = records(n)
		}
		deadline := time.Now().Add(3 * time.Minute)
		for i := 0; i < len(b.nodes); {
			if records(b.nodes[i]) >= base[i]+150 {
				i++
				continue
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s made no progress in 3 minutes (%d records)", what, b.nodes[i].name, records(b.nodes[i]))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	progress("before the first restart")
	for i := 1; i <= 2; i++ {
		d := b.restartNFSD()
		t.Logf("restart %d: nfsd killed -9 and restarted in %v (records on disk: %s %d, %s %d)", i, d.Round(time.Millisecond),
			b.nodes[0].name, records(b.nodes[0]), b.nodes[1].name, records(b.nodes[1]))
		// Both nodes must go on committing after each restart.
		progress(fmt.Sprintf("after restart %d", i))
	}
	committed := map[string]int{}
	for _, n := range b.nodes {
		out := n.must("kill -TERM $(pidof e2enode); for i in $(seq 600); do grep -q '^IO ' /tmp/io.log && break; sleep 0.1; done; cat /tmp/io.log", 2*time.Minute)
		name := n.name
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "IO ") || strings.HasPrefix(l, "IOGAP ") || strings.HasPrefix(l, "ERROR") {
				t.Logf("%s: %s", name, l)
			}
		}
		if strings.Contains(out, "ERROR") || strings.Contains(out, "ESTALE") {
			t.Errorf("%s: I/O failed (ESTALE: %v):\n%s", name, strings.Contains(out, "ESTALE"), out)
		}
		m := regexp.MustCompile(`IO \S+ committed=(\d+)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("%s: no IO summary in %q", name, out)
		}
		committed[name], _ = strconv.Atoi(m[1])
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
