package kube

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rwxnfs/rwxnfs/e2e/internal/extstorage"
	"github.com/rwxnfs/rwxnfs/e2e/toolchain"
)

// TestExternalStorage runs Kubernetes' own external-storage e2e suite
// (e2e.test v1.33.13, every External.Storage spec for nfs.rwxnfs.io that
// the manifest in e2e/internal/extstorage enables; see that package for
// what is declared and what is left out, and why) against the cluster,
// one spec at a time. It fails if any spec or the suite's setup failed,
// or if no spec ran at all. The run's log, manifest and JUnit report stay
// in <run dir>/extstorage/.
//
// Three specs run at once (RWXNFS_EXTSTORAGE_PROCS; 1 runs e2e.test
// alone, in a fixed order): most of a spec's time is waiting for pods on
// TCG nodes. RWXNFS_EXTSTORAGE_FOCUS / RWXNFS_EXTSTORAGE_SKIP replace the
// ginkgo focus and skip expressions (to rerun one spec while debugging).
func TestExternalStorage(t *testing.T) {
	h := needCluster(t)
	ctx := t.Context()
	tools := toolchain.Default()
	bins, err := tools.Ensure(ctx, toolchain.E2ESuite...)
	if err != nil {
		t.Fatal(err)
	}
	kubectl, err := h.Tool(ctx, "kubectl")
	if err != nil {
		t.Fatal(err)
	}
	enableSnapshots(t, h, tools)

	dir := filepath.Join(h.opt.RunDir, "extstorage")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	td := filepath.Join(dir, "testdriver.yaml")
	if err := os.WriteFile(td, extstorage.TestDriver, 0o644); err != nil {
		t.Fatal(err)
	}
	o := extstorage.Options{
		Kubeconfig: h.Kubeconfig(), TestDriver: td, ReportDir: filepath.Join(dir, "report"), Kubectl: kubectl,
		Focus: os.Getenv("RWXNFS_EXTSTORAGE_FOCUS"), Skip: os.Getenv("RWXNFS_EXTSTORAGE_SKIP"),
		// storage-0 runs nfsd only; the suite would wait for it to
		// become schedulable.
		NonBlockingTaints: []string{"rwxnfs.io/storage"},
		Procs:             3,
	}
	if p := os.Getenv("RWXNFS_EXTSTORAGE_PROCS"); p != "" {
		if o.Procs, err = strconv.Atoi(p); err != nil {
			t.Fatalf("RWXNFS_EXTSTORAGE_PROCS=%q: %v", p, err)
		}
	}
	logPath := filepath.Join(dir, "e2e.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	// The apiserver is reachable only inside the test's namespace.
	bin, args := o.Command(bins["e2e.test"], bins["ginkgo"])
	cmd := h.netns.Command(ctx, bin, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, logf, logf
	t.Logf("running %s %s\n(log: %s)", bin, strings.Join(args, " "), logPath)

	stop := make(chan struct{})
	var peak int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); peak = peakRSS(h.netns.Name, stop) }()
	start := time.Now()
	runErr := cmd.Run()
	wall := time.Since(start)
	close(stop)
	wg.Wait()
	t.Logf("e2e.test: %v after %v; peak memory of everything in the test's namespace (VMs, control plane, e2e.test): %d MiB",
		runErr, wall.Round(time.Second), peak>>20)

	f, err := os.Open(filepath.Join(o.ReportDir, "junit_01.xml"))
	if err != nil {
		t.Fatalf("no JUnit report (%v); e2e.test: %v; log %s", err, runErr, logPath)
	}
	defer f.Close()
	rep, err := extstorage.ParseJUnit(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Kubernetes' external storage suite, %v:\n%s", wall.Round(time.Second), rep.Table())
	for _, s := range rep.Failures() {
		t.Errorf("FAILED %s (%.0fs):\n%s", s.Name, s.Seconds, s.Message)
	}
	all := rep.BySuite()
	if total := all[len(all)-1]; total.Ran == 0 {
		t.Errorf("no spec ran (e2e.test: %v; log %s)", runErr, logPath)
	}
	if runErr != nil && len(rep.Failures()) == 0 {
		t.Errorf("e2e.test failed (%v) but its report names no failure: see %s", runErr, logPath)
	}
}

// enableSnapshots makes the cluster able to take volume snapshots, as an
// admin would before turning them on in the chart: the snapshot CRDs,
// snapshot-controller (the cluster's add-on; here a host process in the
// namespace, as the install test runs it), then the chart upgraded with
// the csi-snapshotter sidecar and its VolumeSnapshotClass.
func enableSnapshots(t *testing.T, h *Harness, tools *toolchain.Cache) {
	ctx := t.Context()
	crds, err := toolchain.SnapshotCRDs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range crds {
		if out, err := h.Kubectl(ctx, "apply", "-f", f); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	if out, err := h.Kubectl(ctx, "wait", "--for=condition=Established", "--timeout=60s",
		"crd/volumesnapshots.snapshot.storage.k8s.io", "crd/volumesnapshotcontents.snapshot.storage.k8s.io",
		"crd/volumesnapshotclasses.snapshot.storage.k8s.io"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	sc, err := tools.Path(ctx, "snapshot-controller")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.StartProcess("snapshot-controller", sc, []string{"--kubeconfig=" + h.Kubeconfig(), "--leader-election=false", "--v=3"}); err != nil {
		t.Fatal(err)
	}
	if out, err := h.Helm(ctx, "upgrade", "rwxnfs", h.opt.ChartDir, "--namespace", h.Namespace, "--reuse-values",
		"--set", "controller.snapshots.enabled=true", "--set", "volumeSnapshotClass.enabled=true", "--wait", "--timeout=5m"); err != nil {
		t.Fatalf("helm upgrade with snapshots: %v\n%s", err, out)
	}
	if err := h.WaitPods(ctx, h.Namespace, "app.kubernetes.io/component=controller", 1, 5*time.Minute); err != nil {
		t.Fatal(err)
	}
}

// peakRSS samples, until stop closes, the summed resident memory of every
// process in the network namespace and returns the largest sum.
func peakRSS(netns string, stop <-chan struct{}) int64 {
	var peak int64
	for {
		if out, err := exec.Command("ip", "netns", "pids", netns).Output(); err == nil {
			var sum int64
			for _, pid := range strings.Fields(string(out)) {
				sum += rss(pid)
			}
			peak = max(peak, sum)
		}
		select {
		case <-stop:
			return peak
		case <-time.After(10 * time.Second):
		}
	}
}

// rss is /proc/PID/status's VmRSS in bytes (0 if the process is gone).
func rss(pid string) int64 {
	f, err := os.Open("/proc/" + pid + "/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
