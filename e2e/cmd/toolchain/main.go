// Command toolchain builds and caches the third-party programs the chart
// tests and the cluster harness run (see package e2e/toolchain), then
// prints each one's path and size.
//
//	go run ./e2e/cmd/toolchain chart     # helm, kubeconform, schemas (make test)
//	go run ./e2e/cmd/toolchain cluster   # + control plane, kubectl, etcd, CSI sidecars, snapshot controller
//	go run ./e2e/cmd/toolchain node      # kubelet and agnhost for node VMs (make e2e-cluster)
//	go run ./e2e/cmd/toolchain e2e       # Kubernetes' e2e.test (make e2e-cluster)
//	go run ./e2e/cmd/toolchain helm ...  # named binaries
//
// The cache is $RWXNFS_TOOLS (default ~/.cache/rwxnfs/tools).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/rwxnfs/rwxnfs/e2e/toolchain"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		args = []string{"chart"}
	}
	var bins []string
	schemas := false
	for _, a := range args {
		switch a {
		case "chart":
			bins = append(bins, toolchain.ChartTools...)
			schemas = true
		case "cluster":
			bins = append(bins, toolchain.ClusterTools...)
		case "node":
			bins = append(bins, toolchain.NodeTools...)
		case "e2e":
			bins = append(bins, toolchain.E2ESuite...)
		case "schemas":
			schemas = true
		default:
			bins = append(bins, a)
		}
	}
	start := time.Now()
	c := toolchain.Default()
	paths, err := c.Ensure(ctx, bins...)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, bin := range bins {
		if seen[bin] {
			continue
		}
		seen[bin] = true
		fi, err := os.Stat(paths[bin])
		if err != nil {
			return err
		}
		fmt.Printf("%-24s %6.1f MB  %s\n", bin, float64(fi.Size())/1e6, paths[bin])
	}
	if schemas {
		dir, err := c.Schemas(ctx)
		if err != nil {
			return err
		}
		files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
		fmt.Printf("%-24s %6d files %s\n", "schemas", len(files), dir)
	}
	fmt.Printf("toolchain: ready in %v (cache %s)\n", time.Since(start).Round(time.Millisecond), c.Dir)
	return nil
}
