package kube

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestHarnessAPI checks the harness calls the other cases build on: a
// shell on a node VM, exec and logs in a pod, nfsd's admin credentials
// from the chart's Secrets (used from inside the nfsd pod, over TLS).
func TestHarnessAPI(t *testing.T) {
	h := needCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, rc, err := h.Node("storage-0").Sh(ctx, "grep ' /srv/rwxnfs ' /proc/mounts")
	if err != nil || rc != 0 || !strings.Contains(out, "ext4") {
		t.Fatalf("storage-0: nfsd's disk not mounted as ext4: rc=%d err=%v %q", rc, err, out)
	}
	if _, rc, _ := h.Node("node-1").Sh(ctx, "exit 3"); rc != 3 {
		t.Fatalf("node shell exit status: got %d, want 3", rc)
	}
	addr, token, ca, err := h.Admin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if token == "" || !strings.Contains(ca, "BEGIN CERTIFICATE") || addr != ServerIP+":9103" {
		t.Fatalf("admin credentials: addr %q, token %d bytes, CA %q", addr, len(token), ca)
	}
	pod, err := h.NFSDPod(ctx)
	if err != nil {
		t.Fatal(err)
	}
	info, err := h.Exec(ctx, h.Namespace, pod, "nfsd", "nfsd", "admin", "--addr", addr,
		"--token-file", "/etc/rwxnfs/token/token", "--tls-ca", "/etc/rwxnfs/tls/ca.crt", "info")
	if err != nil {
		t.Fatalf("nfsd admin info in the nfsd pod: %v", err)
	}
	t.Logf("nfsd admin info:\n%s", info)
	logs, err := h.Logs(ctx, h.Namespace, pod, "nfsd")
	if err != nil || !strings.Contains(logs, "nfsd serving") {
		t.Fatalf("nfsd's log has no \"nfsd serving\" (err %v):\n%s", err, tail(logs, 2000))
	}
}
