package kube

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rwxnfs/rwxnfs/e2e/cluster"
)

// volumeDir is where a claim's volume lives on storage-0 (the chart's
// hostPath, /volumes/<id>; the id is the PV's name).
func (h *Harness) volumeDir(ctx context.Context, ns, claim string) (string, error) {
	out, err := h.Kubectl(ctx, "get", "pvc", "-n", ns, claim, "-o", "jsonpath={.spec.volumeName}")
	if err != nil {
		return "", err
	}
	pv := strings.TrimSpace(out)
	if pv == "" {
		return "", fmt.Errorf("claim %s/%s is not bound", ns, claim)
	}
	return "/srv/rwxnfs/volumes/" + pv, nil
}

// storageSh runs a script on storage-0 and returns its trimmed output.
func (h *Harness) storageSh(ctx context.Context, script string) (string, error) {
	out, rc, err := h.Node("storage-0").Sh(ctx, script)
	if err == nil && rc != 0 {
		err = fmt.Errorf("storage-0: %q exited %d: %s", script, rc, out)
	}
	return strings.TrimSpace(out), err
}

// fileSize is a file's size on storage-0's disk (-1 if absent).
func (h *Harness) fileSize(ctx context.Context, path string) (int64, error) {
	out, err := h.storageSh(ctx, "stat -c %s "+path+" 2>/dev/null || echo -1")
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(out, 10, 64)
}

// TestNfsdPodRestart: writers on both workers append under fcntl locks
// while the nfsd pod is deleted. Its StatefulSet starts a new one on
// storage-0 (same disk, same handles); the writers' kernels retry, reclaim
// their locks, and go on. Every record must be in the file exactly once,
// whole and in order. Reported: the time from the deletion to the first
// record written after the old nfsd was gone (issue 16's target: under
// 15 s), and its parts.
func TestNfsdPodRestart(t *testing.T) {
	h := needCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	ns := testNamespace(t, h, "restart")
	const procs, size = 2, 64
	n := recordsPerProc()
	startWriters(ctx, t, h, ns, "shared", procs, n, size)
	for _, node := range h.Workers {
		if err := h.WaitPod(ctx, ns, "writer-"+node, "Running", 5*time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	dir, err := h.volumeDir(ctx, ns, "shared")
	if err != nil {
		t.Fatal(err)
	}
	file := dir + "/records"
	total := int64(len(h.Workers) * procs * n * size)
	// Restart once a fifth of the records are in, so writers are busy on
	// both sides of it.
	if err := cluster.Eventually(ctx, "a fifth of the records written", 10*time.Minute, func() (bool, string, error) {
		sz, err := h.fileSize(ctx, file)
		return sz >= total/5, fmt.Sprintf("%d of %d bytes", sz, total), err
	}); err != nil {
		t.Fatal(err)
	}
	oldPod, err := h.NFSDPod(ctx)
	if err != nil {
		t.Fatal(err)
	}
	oldPID, err := h.storageSh(ctx, "pidof nfsd")
	if err != nil || oldPID == "" {
		t.Fatalf("nfsd's pid on storage-0: %q %v", oldPID, err)
	}
	t0 := time.Now()
	if err := h.DeleteNFSDPod(ctx); err != nil {
		t.Fatal(err)
	}
	// The old process's end: after it nothing more can land until the new
	// one serves.
	var sizeAtStop int64
	if err := cluster.Eventually(ctx, "the old nfsd process gone", 2*time.Minute, func() (bool, string, error) {
		pids, err := h.storageSh(ctx, "pidof nfsd || true")
		if err != nil {
			return false, "", err
		}
		for _, p := range strings.Fields(pids) {
			if p == oldPID {
				return false, "pids " + pids, nil
			}
		}
		sizeAtStop, err = h.fileSize(ctx, file)
		return true, "", err
	}); err != nil {
		t.Fatal(err)
	}
	stopped := time.Since(t0)
	if err := cluster.Eventually(ctx, "a record written after the restart", 5*time.Minute, func() (bool, string, error) {
		sz, err := h.fileSize(ctx, file)
		return sz > sizeAtStop, fmt.Sprintf("%d bytes (%d at the stop)", sz, sizeAtStop), err
	}); err != nil {
		t.Fatal(err)
	}
	firstWrite := time.Since(t0)
	newPod, _ := h.NFSDPod(ctx)
	if err := h.WaitPods(ctx, h.Namespace, "app.kubernetes.io/component=nfsd", 1, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	t.Logf("BENCH nfsd pod restart (%s -> %s): deletion to old process gone %v, to the first write after it %v (target < 15 s)",
		oldPod, newPod, stopped.Round(100*time.Millisecond), firstWrite.Round(100*time.Millisecond))

	for _, node := range h.Workers {
		pod := "writer-" + node
		if err := h.WaitPod(ctx, ns, pod, "Succeeded", 15*time.Minute); err != nil {
			logs, _ := h.Logs(ctx, ns, pod, "")
			t.Fatalf("writer on %s: %v\nlogs: %s", node, err, logs)
		}
		logs, _ := h.Logs(ctx, ns, pod, "")
		if m := appendRate.FindString(logs); m != "" {
			t.Logf("writer on %s: %s", node, m)
		}
	}
	verifyRecords(ctx, t, h, ns, "shared", h.Workers[1], procs, n, size)
}
