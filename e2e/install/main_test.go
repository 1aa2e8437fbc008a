// Package install is the chart's install test (make e2e-install): a real
// control plane (e2e/cluster) in a private network namespace, the chart
// installed and upgraded with helm, nfsd and csi-nfs run as host
// processes with exactly the arguments and secrets the chart rendered into
// the apiserver, and the real CSI sidecars running on the chart's own
// ServiceAccount (any RBAC denial fails the test). It runs only with
// RWXNFS_E2E_INSTALL=1 and as root; in make test it skips.
package install

import (
	"fmt"
	"os"
	"testing"
)

func enabled() bool { return os.Getenv("RWXNFS_E2E_INSTALL") == "1" }

func TestMain(m *testing.M) {
	if !enabled() {
		fmt.Println("e2e/install: skipped: set RWXNFS_E2E_INSTALL=1 (make e2e-install) to start a control plane; needs root")
		os.Exit(m.Run())
	}
	if os.Geteuid() != 0 {
		fmt.Println("e2e/install: must run as root (network namespace, nfsd)")
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// netnsName is the network namespace the test makes; two checkouts on
// one machine must use different names.
func netnsName() string {
	if n := os.Getenv("RWXNFS_CLUSTER_NETNS"); n != "" {
		return n
	}
	return "rwxnfs-install"
}
