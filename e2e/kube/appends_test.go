package kube

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rwxnfs/rwxnfs/e2e/internal/record"
	"github.com/rwxnfs/rwxnfs/e2e/internal/testimages"
)

// recordsPerProc is how many records each writer process appends
// (RWXNFS_CLUSTER_RECORDS, default 200: 1,600 records, ~3 minutes
// under TCG).
func recordsPerProc() int {
	n, err := strconv.Atoi(os.Getenv("RWXNFS_CLUSTER_RECORDS"))
	if err != nil || n <= 0 {
		return 200
	}
	return n
}

// pvcYAML is a ReadWriteMany claim from the chart's StorageClass.
func pvcYAML(ns, name, class, size string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: %s, namespace: %s}
spec:
  accessModes: [ReadWriteMany]
  storageClassName: %s
  resources: {requests: {storage: %s}}
`, name, ns, class, size)
}

// podYAML is a busybox pod (with e2enode) pinned to node, the claim
// mounted at /data, running script under sh.
func podYAML(ns, name, node, claim, script string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: %s}
spec:
  nodeName: %s
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: %s
    command: [sh, -c, %q]
    volumeMounts: [{name: data, mountPath: /data}]
  volumes:
  - name: data
    persistentVolumeClaim: {claimName: %s}
`, name, ns, node, testimages.BusyBox, script, claim)
}

// testNamespace makes a namespace for one test and deletes it after.
func testNamespace(t *testing.T, h *Harness, name string) string {
	t.Helper()
	ctx := context.Background()
	if _, err := h.Kubectl(ctx, "create", "namespace", name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if err := h.Delete(ctx, "namespace", name); err != nil {
			t.Logf("deleting namespace %s: %v", name, err)
		}
	})
	return name
}

var appendRate = regexp.MustCompile(`APPEND done procs=(\d+) n=(\d+) lock=\S+ secs=([0-9.]+) rate=([0-9.]+) failed=(\d+)`)

// TestRWXAppendsAcrossNodes: one ReadWriteMany claim from the chart's
// StorageClass, a writer pod on each worker node, four processes per pod
// appending fixed-size records under fcntl locks (NLM through the node's
// kernel client) to one file. Every record must be there exactly once,
// whole, and in each writer's order.
func TestRWXAppendsAcrossNodes(t *testing.T) {
	h := needCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	ns := testNamespace(t, h, "appends")
	const procs, size = 4, 64
	n := recordsPerProc()
	t0 := time.Now()
	startWriters(ctx, t, h, ns, "shared", procs, n, size)
	var wg sync.WaitGroup
	errs := make([]error, len(h.Workers))
	for i, node := range h.Workers {
		wg.Add(1)
		go func(i int, pod string) {
			defer wg.Done()
			if err := h.WaitPod(ctx, ns, pod, "Running", 5*time.Minute); err != nil {
				errs[i] = err
				return
			}
			errs[i] = h.WaitPod(ctx, ns, pod, "Succeeded", 15*time.Minute)
		}(i, "writer-"+node)
	}
	wg.Wait()
	total := 0.0
	for i, node := range h.Workers {
		logs, lerr := h.Logs(ctx, ns, "writer-"+node, "")
		if errs[i] != nil {
			t.Fatalf("writer on %s: %v\nlogs: %s", node, errs[i], logs)
		}
		if lerr != nil {
			t.Fatal(lerr)
		}
		m := appendRate.FindStringSubmatch(logs)
		if m == nil {
			t.Fatalf("writer on %s: no summary in its log:\n%s", node, logs)
		}
		rate, _ := strconv.ParseFloat(m[4], 64)
		total += rate
		t.Logf("writer on %s: %s", node, m[0])
	}
	t.Logf("pods created to both writers done: %v", time.Since(t0).Round(10*time.Millisecond))

	verifyRecords(ctx, t, h, ns, "shared", h.Workers[0], procs, n, size)
	t.Logf("BENCH locked appends across 2 nodes x %d procs: %d records, %.1f records/s (sum of the pods' rates)",
		procs, len(h.Workers)*procs*n, total)
}

// verifyRecords reads /data/records of claim through a new pod on node and
// checks that every writer process (<worker>.p<i>) appended its n records
// of size bytes exactly once, whole and in order.
func verifyRecords(ctx context.Context, t *testing.T, h *Harness, ns, claim, node string, procs, n, size int) {
	t.Helper()
	if err := h.Apply(ctx, podYAML(ns, "reader", node, claim, "sleep 3600")); err != nil {
		t.Fatal(err)
	}
	if err := h.WaitPod(ctx, ns, "reader", "Running", 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	data, err := h.Exec(ctx, ns, "reader", "", "cat", "/data/records")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{}
	for _, w := range h.Workers {
		for p := 0; p < procs; p++ {
			want[fmt.Sprintf("%s.p%d", w, p)] = n
		}
	}
	rep := record.Verify([]byte(data), size, want)
	t.Logf("file %d bytes: %v", len(data), rep)
	if !rep.OK() || rep.Valid != len(want)*n {
		t.Fatalf("appends damaged: want %d records exactly once, in order: %v", len(want)*n, rep)
	}
}

// startWriters makes claim (ReadWriteMany, from the chart's class) and a
// writer pod "writer-<node>" on every worker, each running procs
// processes that append n records of size bytes under fcntl locks to
// /data/records; a pod's log ends with e2enode's summary (appendRate).
func startWriters(ctx context.Context, t *testing.T, h *Harness, ns, claim string, procs, n, size int) {
	t.Helper()
	if err := h.Apply(ctx, pvcYAML(ns, claim, h.StorageClass, "1Gi")); err != nil {
		t.Fatal(err)
	}
	for _, node := range h.Workers {
		script := fmt.Sprintf("e2enode append -f /data/records -lock fcntl -procs %d -n %d -size %d -w %s", procs, n, size, node)
		if err := h.Apply(ctx, podYAML(ns, "writer-"+node, node, claim, script)); err != nil {
			t.Fatal(err)
		}
	}
}
