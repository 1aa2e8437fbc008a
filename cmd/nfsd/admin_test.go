package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rwxnfs/rwxnfs/pkg/nfsclient"
)

// The admin CLI against a real daemon serving the admin API on a unix
// socket.
func TestAdminCLI(t *testing.T) {
	_, dir, run := startWithAdmin(t, false)
	token := filepath.Join(dir, "token")
	run(0, "create", "web", "1Gi", "uid=33", "gid=33", "mode=0750")
	run(0, "create", "web", "1Gi", "uid=33", "gid=33", "mode=0750") // idempotent
	if out := run(1, "create", "web", "2Gi"); !strings.Contains(out, "AlreadyExists") {
		t.Fatalf("incompatible create: %s", out)
	}
	run(0, "expand", "web", "2Gi")
	out := run(0, "list")
	if !strings.Contains(out, "VOLUME") || !strings.Contains(out, "web") || !strings.Contains(out, "2.0Gi") {
		t.Fatalf("list:\n%s", out)
	}
	out = run(0, "-o", "json", "show", "web")
	var v struct {
		VolumeID      string `json:"volumeId"`
		CapacityBytes int64  `json:"capacityBytes"`
		RootMode      int    `json:"rootMode"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.VolumeID != "web" || v.CapacityBytes != 2147483648 || v.RootMode != 0o750 {
		t.Fatalf("show -o json: %v %+v\n%s", err, v, out)
	}
	run(0, "snapshot", "create", "web-snap", "web") // waits until ready
	if out := run(0, "snapshot", "list"); !strings.Contains(out, "web-snap") || !strings.Contains(out, "true") {
		t.Fatalf("snapshot list:\n%s", out)
	}
	if out := run(0, "snapshot", "show", "web-snap"); !strings.Contains(out, "READY") || !strings.Contains(out, "true") {
		t.Fatalf("snapshot show:\n%s", out)
	}
	out = run(0, "update", "web", "readOnly=true", "clients=10.0.0.0/8", "onDelete=retain")
	if !strings.Contains(out, "Read-only:    true") || !strings.Contains(out, "10.0.0.0/8") || !strings.Contains(out, "On delete:    retain") {
		t.Fatalf("update:\n%s", out)
	}
	if !strings.Contains(out, "Set-id bits:  cleared on files") || !strings.Contains(out, "Devices:      refused") {
		t.Fatalf("update: the safe defaults are not shown:\n%s", out)
	}
	if out := run(0, "update", "web", "allowSetID=true", "allowDevices=true"); !strings.Contains(out, "Set-id bits:  allowed") || !strings.Contains(out, "Devices:      allowed") {
		t.Fatalf("update allowSetID, allowDevices:\n%s", out)
	}
	if out := run(2, "update", "web", "uid=0"); !strings.Contains(out, "cannot change") {
		t.Fatalf("update uid: %s", out)
	}
	if out := run(2, "create", "bad", "1Gi", "colour=blue"); !strings.Contains(out, `unknown parameter "colour"`) {
		t.Fatalf("create with an unknown key: %s", out)
	}
	if out := run(0, "capacity"); !strings.Contains(out, "Backing store:") || !strings.Contains(out, "Promised to limits:") {
		t.Fatalf("capacity:\n%s", out)
	}
	if out := run(0, "info"); !strings.Contains(out, "NFS address:") || !strings.Contains(out, "Version:") {
		t.Fatalf("info:\n%s", out)
	}
	run(0, "create", "web2", "1Gi", "from-snapshot=web-snap")
	run(0, "snapshot", "delete", "web-snap")
	if out := run(0, "delete", "web2", "archive"); !strings.Contains(out, "archive/web2-") {
		t.Fatalf("archive: %s", out)
	}
	if out := run(0, "delete", "web"); !strings.Contains(out, "retained/web") {
		t.Fatalf("delete with the volume's own mode (retain): %s", out)
	}
	if out := run(0, "-o", "json", "list"); !strings.HasPrefix(strings.TrimSpace(out), "[") {
		t.Fatalf("list -o json:\n%s", out)
	}
	run(2, "frobnicate")
	if out := run(1, "show", "missing"); !strings.Contains(out, "NotFound") {
		t.Fatalf("show missing: %s", out)
	}
	os.WriteFile(token, []byte("a-wrong-token-0123456789"), 0o600)
	if out := run(1, "list"); !strings.Contains(out, "Unauthenticated") {
		t.Fatalf("wrong token: %s", out)
	}
}

// TestKill9KeepsUsage: usage is saved while nfsd runs, and after a kill
// -9 that lost the latest changes the start-up walk restores it from the
// tree.
func TestKill9KeepsUsage(t *testing.T) {
	root := t.TempDir()
	usageFile := filepath.Join(root, "state", "usage", "default.json")
	waitUsage := func(want int64) {
		t.Helper()
		var got struct{ Bytes int64 }
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if b, err := os.ReadFile(usageFile); err == nil && json.Unmarshal(b, &got) == nil && got.Bytes == want {
				return
			}
		}
		t.Fatalf("saved usage %d bytes, want %d", got.Bytes, want)
	}
	p := startNFSD(t, root)
	c := client(t, p.addr)
	ctx := context.Background()
	vol, err := c.Mount(ctx, "/volumes/default")
	if err != nil {
		t.Fatal(err)
	}
	f, _, err := c.Create(ctx, vol, "f", nfsclient.Guarded, nfsclient.SetAttr{})
	if err != nil {
		t.Fatal(err)
	}
	mib := bytes.Repeat([]byte{1}, 1<<20)
	for i := 0; i < 3; i++ {
		if _, err := c.Write(ctx, f, uint64(i)<<20, mib, nfsclient.FileSync); err != nil {
			t.Fatal(err)
		}
	}
	waitUsage(3 << 20) // saved by the periodic flush
	if _, err := c.Write(ctx, f, 3<<20, mib, nfsclient.FileSync); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	startNFSD(t, root)
	waitUsage(4 << 20) // the walk found what the kill lost
}
