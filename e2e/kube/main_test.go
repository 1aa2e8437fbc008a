package kube

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// harness is the cluster every case shares (nil when skipped).
var harness *Harness

func enabled() bool { return os.Getenv("RWXNFS_E2E_CLUSTER") == "1" }

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// TestMain builds the cluster once for every case (a boot costs minutes)
// and always tears it down: at the end, on SIGINT/SIGTERM, and (qemu and
// the control plane die with this process) a crashed run's leftovers are
// removed by the next run's NewNetns.
func TestMain(m *testing.M) {
	if !enabled() {
		fmt.Println("e2e/kube: skipped: set RWXNFS_E2E_CLUSTER=1 (make e2e-cluster) to boot a control plane and three node VMs; needs root, ~8 GB of memory")
		os.Exit(m.Run())
	}
	if os.Geteuid() != 0 {
		fmt.Println("e2e/kube: must run as root (network namespace, qemu taps)")
		os.Exit(1)
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cache, _ := filepath.Abs("../.build/kube")
	images, _ := filepath.Abs(envOr("RWXNFS_IMAGES_DIR", "../../build/images"))
	chart, _ := filepath.Abs("../../charts/rwxnfs")
	values, _ := filepath.Abs("values.yaml")
	tag := os.Getenv("RWXNFS_IMAGES_TAG")
	if tag == "" {
		data, err := os.ReadFile(filepath.Join(chart, "Chart.yaml"))
		if m := regexp.MustCompile(`(?m)^appVersion:\s*"?([^"\s]+)"?`).FindSubmatch(data); err == nil && m != nil {
			tag = string(m[1])
		}
	}
	mem, _ := strconv.Atoi(envOr("RWXNFS_CLUSTER_NODE_MEM", "2048"))
	opt := Options{
		Netns: envOr("RWXNFS_CLUSTER_NETNS", "rwxnfs-cluster"), Dir: cache,
		RunDir: filepath.Join(cache, "run"), ImagesDir: images, ImageTag: tag,
		ChartDir: chart, Values: values, NodeMiB: mem, Log: os.Stderr,
	}
	// A signal tears the cluster down before the process goes.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	var h *Harness
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "e2e/kube: %v: tearing the cluster down\n", s)
		cancel()
		if h != nil {
			h.Down()
		}
		os.Exit(2)
	}()
	t0 := time.Now()
	h, err := Up(ctx, opt)
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e/kube: cluster bring-up failed after %v: %v\n(logs in %s)\n", time.Since(t0).Round(time.Second), err, opt.RunDir)
		return 1
	}
	harness = h
	defer h.Down()
	fmt.Fprintf(os.Stderr, "e2e/kube: cluster up in %v; kubeconfig %s; logs %s/logs and %s/cp/logs\n",
		time.Since(t0).Round(10*time.Millisecond), h.Kubeconfig(), opt.RunDir, opt.RunDir)
	for _, s := range h.Times {
		fmt.Fprintf(os.Stderr, "e2e/kube: TIME %-45s %v\n", s.Name, s.D.Round(10*time.Millisecond))
	}
	if os.Getenv("RWXNFS_CLUSTER_HOLD") == "1" {
		fmt.Fprintln(os.Stderr, "e2e/kube: RWXNFS_CLUSTER_HOLD=1: cluster kept until SIGINT")
		select {}
	}
	return m.Run()
}

// cluster returns the shared cluster, skipping the test when disabled.
func needCluster(t *testing.T) *Harness {
	t.Helper()
	if harness == nil {
		t.Skip("e2e/kube: set RWXNFS_E2E_CLUSTER=1 (make e2e-cluster)")
	}
	return harness
}
