package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// runRefused runs nfsd with args and expects it to exit with status 1
// within a short time; it returns its output.
func runRefused(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], append([]string{"serve", "--init", "--listen", "127.0.0.1:0", "--portmap-listen", "127.0.0.1:0", "--metrics-listen", "off"}, args...)...)
	cmd.Env = append(os.Environ(), "RWXNFS_BE_NFSD=1")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("nfsd %v: %v, want a refusal with exit status 1\n%s", args, err, out)
	}
	return string(out)
}

func adminToken(t *testing.T, dir string) string {
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("rootlock-test-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return token
}

// TestSecondServerOnSameRootRefused: a second nfsd on a tree another one
// serves exits at once naming the first (pid and addresses), leaves the
// first serving, and a kill -9 of the first frees the tree.
func TestSecondServerOnSameRootRefused(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	token := adminToken(t, dir)
	first := startNFSD(t, root, "--admin-listen", "unix:"+filepath.Join(dir, "a.sock"), "--admin-token-file", token)

	out := runRefused(t, "--root", root, "--admin-listen", "unix:"+filepath.Join(dir, "b.sock"), "--admin-token-file", token)
	for _, want := range []string{"in use by another nfsd", "pid " + strconv.Itoa(first.cmd.Process.Pid), first.addr, filepath.Join(dir, "a.sock")} {
		if !bytes.Contains([]byte(out), []byte(want)) {
			t.Errorf("refusal does not say %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "b.sock")); err == nil {
		t.Errorf("the refused server left its admin socket behind")
	}
	// The first one is untouched.
	if _, err := client(t, first.addr).Mount(context.Background(), "/volumes/default"); err != nil {
		t.Fatalf("first server after the refusal: %v", err)
	}
	if code := execute([]string{"admin", "--addr", "unix:" + filepath.Join(dir, "a.sock"), "--token-file", token, "list"}, &bytes.Buffer{}, &bytes.Buffer{}); code != 0 {
		t.Fatalf("first server's admin API after the refusal: exit %d", code)
	}

	// The kernel drops the lock with its holder, however it dies.
	first.cmd.Process.Signal(syscall.SIGKILL)
	<-first.done
	second := startNFSD(t, root)
	if _, err := client(t, second.addr).Mount(context.Background(), "/volumes/default"); err != nil {
		t.Fatalf("server started after the first was killed: %v", err)
	}
}

// TestAdminSocketOfLiveServerKept: an nfsd on another tree given the admin
// socket path of a live server refuses instead of unlinking it; a socket
// left by a dead server is replaced.
func TestAdminSocketOfLiveServerKept(t *testing.T) {
	dir := t.TempDir()
	token := adminToken(t, dir)
	sock := filepath.Join(dir, "admin.sock")
	first := startNFSD(t, filepath.Join(dir, "root1"), "--admin-listen", "unix:"+sock, "--admin-token-file", token)

	out := runRefused(t, "--root", filepath.Join(dir, "root2"), "--admin-listen", "unix:"+sock, "--admin-token-file", token)
	if !bytes.Contains([]byte(out), []byte("socket of a running server")) {
		t.Errorf("refusal does not explain itself:\n%s", out)
	}
	var stdout, stderr bytes.Buffer
	if code := execute([]string{"admin", "--addr", "unix:" + sock, "--token-file", token, "info"}, &stdout, &stderr); code != 0 ||
		!bytes.Contains(stdout.Bytes(), []byte(first.addr)) {
		t.Fatalf("the live server's admin socket no longer reaches it: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}

	first.cmd.Process.Signal(syscall.SIGKILL) // leaves the socket file behind
	<-first.done
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("expected a stale socket after kill -9: %v", err)
	}
	second := startNFSD(t, filepath.Join(dir, "root2"), "--admin-listen", "unix:"+sock, "--admin-token-file", token)
	stdout.Reset()
	if code := execute([]string{"admin", "--addr", "unix:" + sock, "--token-file", token, "info"}, &stdout, &stderr); code != 0 ||
		!bytes.Contains(stdout.Bytes(), []byte(second.addr)) {
		t.Fatalf("stale socket not replaced: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
}
