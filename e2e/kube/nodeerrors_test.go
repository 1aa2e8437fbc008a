package kube

import (
	"context"
	"fmt"
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
	// onNode reports the image and readiness of the node plugin pod on
	// node ("" if there is none).
	onNode := func(ctx context.Context, node string) (image string, ready bool, err error) {
		out, err := h.Kubectl(ctx, "get", "pods", "-n", h.Namespace, "-l", "app.kubernetes.io/component=node",
			"--field-selector", "spec.nodeName="+node, "-o", `jsonpath={range .items[*]}{.spec.containers[0].image}{" "}{.status.phase}{"\n"}{end}`)
		if err != nil {
			return "", false, err
		}
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if f := strings.Fields(l); len(f) == 2 && f[1] == "Running" {
				return f[0], true, nil
			}
		}
		return "", false, nil
	}
	// upgrade sets the node image and waits until the plugin on node runs
	// it. A plugin without mount.nfs never turns Ready (its readiness
	// names the missing helper), so the DaemonSet's rolling update stops
	// after the first node it replaces: only node is waited for, and the
	// test's pod goes there.
	upgrade := func(ctx context.Context, image, node string) error {
		out, err := h.Helm(ctx, "upgrade", "rwxnfs", h.opt.ChartDir, "--namespace", h.Namespace, "--reuse-values",
			"--set", "image.node="+image)
		if err != nil {
			return fmt.Errorf("helm upgrade image.node=%s: %v\n%s", image, err, out)
		}
		return cluster.Eventually(ctx, "the node plugin on "+node+" running "+image, 8*time.Minute, func() (bool, string, error) {
			img, running, err := onNode(ctx, node)
			if err != nil {
				return false, err.Error(), nil
			}
			return running && strings.HasPrefix(img, image+":"), img, nil
		})
	}
	node := ""
	restore := func(ctx context.Context) error {
		if err := upgrade(ctx, "rwxnfs/csi-nfs-node", node); err != nil {
			return err
		}
		return h.WaitPods(ctx, h.Namespace, "app.kubernetes.io/component=node", len(h.Workers), 8*time.Minute)
	}
	restored := false
	t.Cleanup(func() {
		if !restored {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			if err := restore(ctx); err != nil {
				t.Errorf("putting the node plugin back: %v", err)
			}
		}
	})
	// The DaemonSet replaces pods in an order of its own: the broken
	// plugin's node is whichever came first.
	if _, err := h.Helm(ctx, "upgrade", "rwxnfs", h.opt.ChartDir, "--namespace", h.Namespace, "--reuse-values",
		"--set", "image.node="+testimages.NodeWithoutHelper); err != nil {
		t.Fatal(err)
	}
	if err := cluster.Eventually(ctx, "a node plugin running "+testimages.NodeWithoutHelper, 8*time.Minute, func() (bool, string, error) {
		for _, w := range h.Workers {
			img, running, err := onNode(ctx, w)
			if err == nil && running && strings.HasPrefix(img, testimages.NodeWithoutHelper+":") {
				node = w
				return true, "", nil
			}
		}
		return false, "", nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("the plugin without mount.nfs runs on %s", node)

	if err := h.Apply(ctx, pvcYAML(ns, "vol", h.StorageClass, "1Gi")); err != nil {
		t.Fatal(err)
	}
	// Bound first: a pod made before that gets a "PVC is not bound" event,
	// which is not what this test is about.
	if err := cluster.Eventually(ctx, "claim bound", 3*time.Minute, func() (bool, string, error) {
		out, err := h.Kubectl(ctx, "get", "pvc", "-n", ns, "vol", "-o", "jsonpath={.status.phase}")
		return err == nil && out == "Bound", out, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := h.Apply(ctx, podYAML(ns, "user", node, "vol", "sleep 3600")); err != nil {
		t.Fatal(err)
	}
	// kubelet reports each failed NodePublishVolume as a FailedMount event
	// (its own errors too, e.g. a timeout): wait for the driver's.
	var events string
	if err := cluster.Eventually(ctx, "a FailedMount event from the driver", 5*time.Minute, func() (bool, string, error) {
		out, err := h.Kubectl(ctx, "get", "events", "-n", ns, "--field-selector", "involvedObject.name=user,reason=FailedMount",
			"-o", "jsonpath={range .items[*]}{.message}{\"\\n\"}{end}")
		events = out
		return err == nil && strings.Contains(out, "rpc error"), out, nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("the pod's event: %s", strings.TrimSpace(events))
	for _, want := range []string{"mount.nfs", "not installed", "nfs-common", node} {
		if !strings.Contains(events, want) {
			t.Errorf("the FailedMount event does not say %q:\n%s", want, events)
		}
	}
	if strings.Contains(events, "exit status 32") {
		t.Errorf("the event is mount's bare exit status:\n%s", events)
	}

	// Back to the real image: the same pod mounts and runs.
	if err := restore(ctx); err != nil {
		t.Fatal(err)
	}
	restored = true
	if err := h.WaitPod(ctx, ns, "user", "Running", 5*time.Minute); err != nil {
		t.Fatal(err)
	}
}
