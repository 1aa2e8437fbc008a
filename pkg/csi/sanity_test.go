package csi

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rwxnfs/rwxnfs/internal/sanityreport"
	"github.com/rwxnfs/rwxnfs/pkg/admin"
	"github.com/rwxnfs/rwxnfs/pkg/nfsd"
)

// sanityBinary finds csi-sanity (v5.6.0), which `make test` builds into
// build/bin. Without it the test skips, except under make (RWXNFS_STRICT).
func sanityBinary(t *testing.T) string {
	t.Helper()
	p := os.Getenv("RWXNFS_CSI_SANITY")
	if p == "" {
		p, _ = filepath.Abs("../../build/csi-sanity-v5.6.0/csi-sanity") // as csi.mk builds it
	}
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("RWXNFS_STRICT") != "" {
			t.Fatalf("csi-sanity not found at %s (make test builds it; or: make csi-sanity)", p)
		}
		t.Skipf("csi-sanity not found at %s: run make csi-sanity", p)
	}
	return p
}

const testToken = "csi-sanity-admin-token-0123456789"

// startNFSD runs a real nfsd with its admin API on a unix socket.
func startNFSD(t *testing.T, log *slog.Logger) (d *nfsd.Daemon, adminAddr, tokenFile string) {
	t.Helper()
	dir := t.TempDir()
	tokenFile = filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(testToken+"\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	adminAddr = "unix:" + filepath.Join(dir, "admin.sock")
	d, err := nfsd.Start(nfsd.Config{
		Root: filepath.Join(dir, "root"), Listen: "127.0.0.1:0", Log: log, NoLocking: true,
		Admin: admin.Config{Listen: adminAddr, TokenFile: tokenFile},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		d.Shutdown(ctx)
	})
	return d, adminAddr, tokenFile
}

// startDriver runs csi-nfs (both services: csi-sanity's clean-up asks
// the node service even in controller specs) on a unix socket.
func startDriver(t *testing.T, log *slog.Logger, adminAddr, tokenFile string) *Driver {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "csi.sock")
	drv, err := Start(Config{
		Mode: ModeAll, Endpoint: "unix://" + sock, Version: "test", Log: log, NodeID: "sanity-node",
		NFSDs:          []NFSD{{Name: "main", Admin: adminAddr, Server: "127.0.0.1"}},
		AdminTokenFile: tokenFile,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drv.Stop)
	return drv
}

// runSanity runs csi-sanity with args plus a JUnit report, logs its
// output, and fails the test on any failed spec.
func runSanity(t *testing.T, bin string, args ...string) sanityreport.Result {
	t.Helper()
	report := filepath.Join(t.TempDir(), "junit.xml")
	cmd := exec.Command(bin, append(args, "--ginkgo.junit-report="+report, "--ginkgo.no-color")...)
	out, err := cmd.CombinedOutput()
	data, rerr := os.ReadFile(report)
	if rerr != nil {
		t.Fatalf("csi-sanity: %v, no report: %v\n%s", err, rerr, tail(out, 60))
	}
	res, jerr := sanityreport.Parse(data)
	if jerr != nil {
		t.Fatalf("csi-sanity: %v, report: %v\n%s", err, jerr, tail(out, 60))
	}
	t.Logf("csi-sanity: %d specs passed, %d failed, %d skipped by csi-sanity itself, %d outside the focus", res.Passed, res.Failed, len(res.Skipped), res.NotRun)
	for _, s := range res.Skipped {
		t.Logf("  skipped: %s", s)
	}
	if res.Failed > 0 || err != nil {
		for _, f := range res.Failures {
			t.Errorf("FAILED: %s", f)
		}
		t.Fatalf("csi-sanity: %v\n%s", err, tail(out, 200))
	}
	if res.Passed == 0 {
		t.Fatalf("csi-sanity ran no spec\n%s", tail(out, 60))
	}
	return res
}

func tail(b []byte, lines int) string {
	l := strings.Split(string(b), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

func writeYAML(t *testing.T, m map[string]string) string {
	t.Helper()
	var b strings.Builder
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%q: %q\n", k, m[k])
	}
	p := filepath.Join(t.TempDir(), "params.yaml")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSanityController runs csi-sanity's identity and controller specs
// against the real driver and a real nfsd: volumes with quotas,
// snapshots (copied in the background), clones, expansion, capacity,
// ListVolumes pagination and ModifyVolume all advertised and exercised.
// Node specs need real NFS mounts and run in a VM (make e2e).
func TestSanityController(t *testing.T) {
	bin := sanityBinary(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	_, adminAddr, tokenFile := startNFSD(t, log)
	drv := startDriver(t, log, adminAddr, tokenFile)
	ep := "unix://" + drv.Addr().String()
	params := writeYAML(t, map[string]string{
		"uid": "0", "gid": "0", "mode": "0777", "squash": "none", "onDelete": "delete",
		// What csi-provisioner adds; the driver must ignore them.
		metaPVCName: "sanity", metaPVCNamespace: "default", metaPVName: "pv-sanity",
	})
	mutable := writeYAML(t, map[string]string{"inodeLimit": "100000", "allowedClients": "127.0.0.0/8, 10.0.0.0/8"})
	res := runSanity(t, bin,
		"--csi.endpoint="+ep, "--csi.controllerendpoint="+ep,
		"--csi.mountdir="+filepath.Join(t.TempDir(), "mnt"), "--csi.stagingdir="+filepath.Join(t.TempDir(), "stage"),
		"--csi.testvolumesize=67108864", "--csi.testvolumeexpandsize=134217728",
		"--csi.testvolumeparameters="+params, "--csi.testvolumemutableparameters="+mutable,
		`--ginkgo.focus=\[Controller Server\]|Identity Service`,
	)
	if res.Passed < 50 {
		t.Fatalf("only %d controller specs passed: capabilities missing?", res.Passed)
	}
}
