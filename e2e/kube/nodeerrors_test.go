package kube

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rwxnfs/rwxnfs/e2e/cluster"
	"github.com/rwxnfs/rwxnfs/e2e/internal/testimages"
)

// TestNodePluginErrors: the node plugin runs from an image without
// mount.nfs (as if built without nfs-common), set through the chart's
// values. A pod using a claim must then get an event that names the
// missing helper and the fix, not mount's "exit status 32". The chart is
// put back afterwards and a pod mounts again.
func TestNodePluginErrors(t *testing.T) {
	h := needCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	ns := testNamespace(t, h, "nodeerr")
	upgrade := func(image string) {
		t.Helper()
		out, err := h.Helm(ctx, "upgrade", "rwxnfs", h.opt.ChartDir, "--namespace", h.Namespace, "--reuse-values",
			"--set", "image.node="+image)
		if err != nil {
			t.Fatalf("helm upgrade image.node=%s: %v\n%s", image, err, out)
		}
		// The DaemonSet rolls one node at a time; wait until every pod
		// runs the image asked for.
		if err := cluster.Eventually(ctx, "node plugin pods on "+image, 8*time.Minute, func() (bool, string, error) {
			out, err := h.Kubectl(ctx, "get", "pods", "-n", h.Namespace, "-l", "app.kubernetes.io/component=node",
				"-o", `jsonpath={range .items[*]}{.spec.containers[0].image}{" "}{.status.phase}{";"}{end}`)
			if err != nil {
				return false, err.Error(), nil
			}
			pods := strings.Split(strings.TrimSuffix(out, ";"), ";")
			if len(pods) != len(h.Workers) {
				return false, out, nil
			}
			for _, p := range pods {
				if !strings.Contains(p, image+":") || !strings.HasSuffix(p, "Running") {
					return false, out, nil
				}
			}
			return true, out, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	restored := false
	t.Cleanup(func() {
		if !restored {
			upgrade("rwxnfs/csi-nfs-node")
		}
	})
	upgrade(testimages.NodeWithoutHelper)

	if err := h.Apply(ctx, pvcYAML(ns, "vol", h.StorageClass, "1Gi")); err != nil {
		t.Fatal(err)
	}
	if err := h.Apply(ctx, podYAML(ns, "user", h.Workers[0], "vol", "sleep 3600")); err != nil {
		t.Fatal(err)
	}
	var events string
	if err := cluster.Eventually(ctx, "a FailedMount event", 5*time.Minute, func() (bool, string, error) {
		out, err := h.Kubectl(ctx, "get", "events", "-n", ns, "--field-selector", "involvedObject.name=user,reason=FailedMount",
			"-o", "jsonpath={range .items[*]}{.message}{\"\\n\"}{end}")
		events = out
		return err == nil && strings.TrimSpace(out) != "", out, nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("the pod's event: %s", strings.TrimSpace(events))
	for _, want := range []string{"mount.nfs", "not installed", "nfs-common"} {
		if !strings.Contains(events, want) {
			t.Errorf("the FailedMount event does not say %q:\n%s", want, events)
		}
	}
	if strings.Contains(events, "exit status 32") {
		t.Errorf("the event is mount's bare exit status:\n%s", events)
	}

	// Back to the real image: the same pod mounts and runs.
	upgrade("rwxnfs/csi-nfs-node")
	restored = true
	if err := h.WaitPod(ctx, ns, "user", "Running", 5*time.Minute); err != nil {
		t.Fatal(err)
	}
}
