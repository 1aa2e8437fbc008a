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

// dfKiB is the size of the file system at path in a pod, as df shows it.
// -P keeps each file system on one line: without it busybox df puts a
// long source (10.77.0.10:/volumes/pvc-...) on a line of its own, and the
// second field of the last line is then the used space.
func (h *Harness) dfKiB(ctx context.Context, ns, pod, path string) (int64, error) {
	out, err := h.Exec(ctx, ns, pod, "", "df", "-kP", path)
	if err != nil {
		return 0, err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	f := strings.Fields(lines[len(lines)-1])
	if len(f) < 2 {
		return 0, fmt.Errorf("df output: %q", out)
	}
	return strconv.ParseInt(f[1], 10, 64)
}

// aboutMiB reports whether a df size in KiB is mib MiB, give or take the
// client's rounding to its block size (at most 1 MiB down).
func aboutMiB(kib, mib int64) bool { return kib <= mib*1024 && kib > (mib-1)*1024 }

// TestExpandInUse: a pod fills its claim to the quota (the write past it
// fails), the claim is grown while the pod runs, and the same pod — no
// restart, no remount — sees the new size in df and writes past the old
// size.
func TestExpandInUse(t *testing.T) {
	h := needCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	ns := testNamespace(t, h, "expand")
	if err := h.Apply(ctx, pvcYAML(ns, "grow", h.StorageClass, "64Mi")); err != nil {
		t.Fatal(err)
	}
	node := h.Workers[0]
	if err := h.Apply(ctx, podYAML(ns, "user", node, "grow", "sleep 3600")); err != nil {
		t.Fatal(err)
	}
	if err := h.WaitPod(ctx, ns, "user", "Running", 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	uid, err := h.Kubectl(ctx, "get", "pod", "-n", ns, "user", "-o", "jsonpath={.metadata.uid}")
	if err != nil {
		t.Fatal(err)
	}
	before, err := h.dfKiB(ctx, ns, "user", "/data")
	if err != nil {
		t.Fatal(err)
	}
	if !aboutMiB(before, 64) {
		t.Fatalf("df before: %d KiB, want the claim's 64 MiB (65536 KiB)", before)
	}
	// 48 MiB fits; another 48 MiB does not (EDQUOT, "Disk quota exceeded").
	if out, err := h.Exec(ctx, ns, "user", "", "sh", "-c", "dd if=/dev/zero of=/data/a bs=1M count=48 conv=fsync 2>&1"); err != nil {
		t.Fatalf("writing 48 MiB of a 64 MiB claim: %v\n%s", err, out)
	}
	out, err := h.Exec(ctx, ns, "user", "", "sh", "-c", "dd if=/dev/zero of=/data/b bs=1M count=48 conv=fsync 2>&1; echo rc=$?")
	if err != nil || !strings.Contains(out, "rc=1") || !strings.Contains(strings.ToLower(out), "quota") {
		t.Fatalf("writing past the 64 MiB quota: want dd to fail with EDQUOT, got %v:\n%s", err, out)
	}
	h.Exec(ctx, ns, "user", "", "rm", "-f", "/data/b")

	t0 := time.Now()
	if _, err := h.Kubectl(ctx, "patch", "pvc", "-n", ns, "grow", "--type=merge", "-p", `{"spec":{"resources":{"requests":{"storage":"256Mi"}}}}`); err != nil {
		t.Fatal(err)
	}
	if err := cluster.Eventually(ctx, "the claim's capacity 256Mi", 5*time.Minute, func() (bool, string, error) {
		out, err := h.Kubectl(ctx, "get", "pvc", "-n", ns, "grow", "-o", "jsonpath={.status.capacity.storage}")
		return strings.TrimSpace(out) == "256Mi", out, err
	}); err != nil {
		t.Fatal(err)
	}
	resized := time.Since(t0)
	var after int64
	if err := cluster.Eventually(ctx, "df in the pod showing 256 MiB", 2*time.Minute, func() (bool, string, error) {
		var err error
		after, err = h.dfKiB(ctx, ns, "user", "/data")
		return aboutMiB(after, 256), fmt.Sprintf("%d KiB", after), err
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("claim grown 64Mi -> 256Mi: status %v after the patch, df in the running pod %v", resized.Round(100*time.Millisecond), time.Since(t0).Round(100*time.Millisecond))
	if out, err := h.Exec(ctx, ns, "user", "", "sh", "-c", "dd if=/dev/zero of=/data/b bs=1M count=96 conv=fsync 2>&1"); err != nil {
		t.Fatalf("writing past the old size after the expansion: %v\n%s", err, out)
	}
	used, err := h.Exec(ctx, ns, "user", "", "du", "-sk", "/data")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after: %s", strings.TrimSpace(used))
	uid2, _ := h.Kubectl(ctx, "get", "pod", "-n", ns, "user", "-o", "jsonpath={.metadata.uid} {.status.containerStatuses[0].restartCount}")
	if uid2 != uid+" 0" {
		t.Fatalf("the pod was replaced or restarted during the expansion: %q, was %q with 0 restarts", uid2, uid)
	}
}
