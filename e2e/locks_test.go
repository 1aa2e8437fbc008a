package e2e

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rwxnfs/rwxnfs/e2e/internal/record"
)

const recSize = 64

// appendRun is one concurrent append run across all nodes of a bed.
type appendRun struct {
	kind    string // fcntl, flock or none
	procs   int    // processes per node
	n       int    // records per process
	file    string // name in the default volume
	timeout time.Duration
	during  func() // runs on the host while the nodes append (may be nil)
}

type appendResult struct {
	report  record.Report
	secs    float64 // host wall time from start to the last node done
	perNode []string
}

// appendAll mounts the default volume on every node, has every node run
// "e2enode append" at once, and verifies the file on the server's disk.
func (b *bed) appendAll(a appendRun) appendResult {
	t := b.t
	t.Helper()
	os.Remove(b.volPath("default") + "/" + a.file)
	for _, n := range b.nodes {
		n.mount("default", "vers=3")
	}
	if a.timeout == 0 {
		a.timeout = 10 * time.Minute
	}
	start := time.Now()
	chans := make([]<-chan result, len(b.nodes))
	for i, n := range b.nodes {
		chans[i] = n.start(fmt.Sprintf("e2enode append -f /mnt/default/%s -lock %s -procs %d -n %d -size %d",
			a.file, a.kind, a.procs, a.n, recSize))
	}
	var wg sync.WaitGroup
	if a.during != nil {
		wg.Add(1)
		go func() { defer wg.Done(); a.during() }()
	}
	res := appendResult{perNode: make([]string, len(b.nodes))}
	deadline := time.After(a.timeout)
	for i, c := range chans {
		select {
		case r := <-c:
			res.perNode[i] = strings.TrimSpace(r.out)
			if r.err != nil || r.rc != 0 {
				t.Errorf("%s append: rc=%d err=%v\n%s", b.nodes[i].name, r.rc, r.err, r.out)
			}
		case <-deadline:
			t.Fatalf("append run not done after %v (node %d)", a.timeout, i)
		}
	}
	res.secs = time.Since(start).Seconds()
	wg.Wait()
	for i, out := range res.perNode {
		if m := regexp.MustCompile(`APPEND done .*`).FindString(out); m != "" {
			t.Logf("%s: %s", b.nodes[i].name, m)
		}
		if strings.Contains(out, "ESTALE") {
			t.Errorf("%s saw ESTALE:\n%s", b.nodes[i].name, out)
		}
	}
	data, err := os.ReadFile(b.volPath("default") + "/" + a.file)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{}
	for _, n := range b.nodes {
		for p := 0; p < a.procs; p++ {
			want[fmt.Sprintf("%s.p%d", n.name, p)] = a.n
		}
	}
	res.report = record.Verify(data, recSize, want)
	t.Logf("%s appends: %d nodes x %d procs x %d records, file %d bytes: %v", a.kind, len(b.nodes), a.procs, a.n, len(data), res.report)
	return res
}

// lockedAppends is the shared body of the locked-append cases.
// A run is a benchmark unless disturbed (bench=false: a server restart).
func lockedAppends(t *testing.T, kind string, procs, n int, during func(*bed), bench bool) *bed {
	b := newBed(t, 2)
	a := appendRun{kind: kind, procs: procs, n: n, file: "app-" + kind + ".dat"}
	if during != nil {
		a.during = func() { during(b) }
	}
	res := b.appendAll(a)
	total := len(b.nodes) * procs * n
	if !res.report.OK() || res.report.Valid != total {
		t.Fatalf("%s-locked appends damaged: want %d records exactly once, in order: %v", kind, total, res.report)
	}
	if !bench {
		return b
	}
	rate := float64(total) / res.secs
	t.Logf("BENCH locked appends (%s) across two nodes: %d records in %.2fs = %.1f appends/s", kind, total, res.secs, rate)
	logf("BENCH %s: locked appends (%s) across two nodes: %.1f appends/s (%d in %.2fs)", t.Name(), kind, rate, total, res.secs)
	return b
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// appendRecords is records per process: 1,000 for the full run;
// make e2e-smoke sets RWXNFS_E2E_RECORDS lower.
func appendRecords() int { return envInt("RWXNFS_E2E_RECORDS", 1000) }

// Two nodes x four processes append under F_SETLKW (NLM byte-range
// locks): every record must land exactly once, whole, in each writer's order.
func TestLockedAppendsFcntl(t *testing.T) {
	lockedAppends(t, "fcntl", 4, appendRecords(), nlmLockSeen("app-fcntl.dat"), true)
}

// The same under flock(LOCK_EX), which the Linux NFS client maps to a
// whole-file NLM lock.
func TestLockedAppendsFlock(t *testing.T) {
	lockedAppends(t, "flock", 4, appendRecords(), nlmLockSeen("app-flock.dat"), true)
}

// nlmLockSeen checks, while the nodes append, that their locks really
// reach nfsd as NLM locks (and are not kept local to each client):
// "nfsd admin locks list" must show one on the file.
func nlmLockSeen(file string) func(*bed) {
	return func(b *bed) {
		deadline := time.Now().Add(3 * time.Minute)
		for time.Now().Before(deadline) {
			out, err := b.admin("locks", "list")
			if err == nil && regexp.MustCompile(`/`+regexp.QuoteMeta(file)+`\s+lock\s+exclusive\s+node[01]`).MatchString(out) {
				b.t.Logf("nfsd holds an NLM lock on %s:\n%s", file, strings.TrimSpace(out))
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		b.t.Errorf("nfsd never listed an NLM lock on %s during the run", file)
	}
}

// The control: no locks. Loss is expected and only reported.
func TestUnlockedAppendsControl(t *testing.T) {
	b := newBed(t, 2)
	n := appendRecords()
	res := b.appendAll(appendRun{kind: "none", procs: 4, n: n, file: "app-none.dat"})
	total := 2 * 4 * n
	lost := res.report.Lost
	t.Logf("unlocked control: %d of %d records lost, %d torn lines, %d duplicates (%.1f%% lost) in %.2fs",
		lost, total, res.report.Torn, res.report.Dups, 100*float64(lost)/float64(total), res.secs)
	logf("%s: unlocked: %d of %d lost, %d torn", t.Name(), lost, total, res.report.Torn)
	if res.report.Valid == 0 {
		t.Fatalf("no record at all reached the file: the control run did not run")
	}
}
