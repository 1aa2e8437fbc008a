package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	adminv1 "github.com/rwxnfs/rwxnfs/api/admin/v1"
	"github.com/rwxnfs/rwxnfs/pkg/admin"
)

// runNFSD runs the real command with args until it serves (served true,
// left running until the test ends) or exits (served false). It returns
// everything it logged so far and, if it serves, its admin API's address.
func runNFSD(t *testing.T, args ...string) (served bool, logs, adminAddr string) {
	t.Helper()
	p, err := launchNFSD(t, append([]string{"--portmap-listen", "off"}, args...)...)
	p.mu.Lock()
	logs = p.logs.String()
	p.mu.Unlock()
	for _, line := range strings.Split(logs, "\n") {
		var rec struct{ Msg, Listen string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "admin API serving" {
			adminAddr = rec.Listen
		}
	}
	return err == nil, logs, adminAddr
}

// nfsd refuses to start on an admin token file or handle key that group
// or others may read or write, naming the file and the chmod to run.
func TestRefusesSecretsOpenToOthers(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	os.WriteFile(token, []byte("hardening-test-token-0123456789\n"), 0o600)
	os.Chmod(token, 0o644)
	served, logs, _ := runNFSD(t, "--root", filepath.Join(dir, "root"), "--admin-listen", "unix:"+filepath.Join(dir, "admin.sock"), "--admin-token-file", token)
	if served || !strings.Contains(logs, "admin token file "+token+" is open to group or others (mode 0644): run chmod 600 "+token) {
		t.Errorf("token file 0644: served %v\n%s", served, logs)
	}
	os.Chmod(token, 0o600)

	root := filepath.Join(dir, "root2")
	key := filepath.Join(root, "state", "handle.key")
	os.MkdirAll(filepath.Dir(key), 0o700)
	os.WriteFile(key, bytes.Repeat([]byte{7}, 32), 0o600)
	os.Chmod(key, 0o640)
	served, logs, _ = runNFSD(t, "--root", root)
	if served || !strings.Contains(logs, "handle key "+key+" is open to group or others (mode 0640): run chmod 600 "+key) {
		t.Errorf("handle key 0640: served %v\n%s", served, logs)
	}
	os.Chmod(key, 0o600)
	if served, logs, _ = runNFSD(t, "--root", root, "--admin-listen", "unix:"+filepath.Join(dir, "admin.sock"), "--admin-token-file", token); !served {
		t.Fatalf("private token and key: did not serve\n%s", logs)
	}
}

// The admin API on TCP without TLS is served (a loopback-only setup may
// want it), but nfsd says loudly at start, and in GetServerInfo, that
// the token crosses the network in clear.
func TestWarnsAdminTCPWithoutTLS(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	const secret = "hardening-test-token-0123456789"
	os.WriteFile(token, []byte(secret), 0o600)
	served, logs, addr := runNFSD(t, "--root", filepath.Join(dir, "root"), "--admin-listen", "127.0.0.1:0", "--admin-token-file", token)
	if !served {
		t.Fatalf("did not serve\n%s", logs)
	}
	var warned bool
	for _, line := range strings.Split(logs, "\n") {
		var rec struct{ Level, Msg string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Level == "WARN" && strings.Contains(rec.Msg, "without TLS") {
			warned = true
		}
	}
	if !warned {
		t.Errorf("no WARN about TCP without TLS:\n%s", logs)
	}
	cl, conn, err := admin.Dial(admin.ClientConfig{Addr: addr, Token: secret})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	info, err := cl.GetServerInfo(ctx, &adminv1.GetServerInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Warnings) != 1 || !strings.Contains(info.Warnings[0], "without TLS") {
		t.Errorf("GetServerInfo warnings %q", info.Warnings)
	}
	// And "nfsd admin info" shows it.
	infoCmd := exec.Command(os.Args[0], "admin", "info", "--addr", addr, "--token-file", token)
	infoCmd.Env = append(os.Environ(), "RWXNFS_BE_NFSD=1")
	out, err := infoCmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "WARNING:") || !strings.Contains(string(out), "without TLS") {
		t.Errorf("nfsd admin info: %v\n%s", err, out)
	}

	// A unix socket: no warning.
	served, logs, _ = runNFSD(t, "--root", filepath.Join(dir, "root2"), "--admin-listen", "unix:"+filepath.Join(dir, "admin.sock"), "--admin-token-file", token)
	if !served || strings.Contains(logs, "without TLS") {
		t.Errorf("unix socket: served %v\n%s", served, logs)
	}
}
