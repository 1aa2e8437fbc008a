package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rwxnfs/rwxnfs/pkg/nfsclient"
	"github.com/rwxnfs/rwxnfs/pkg/quota"
)

// The test binary doubles as nfsd, so these tests run the real command
// (flags, signals, exit codes) without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("RWXNFS_BE_NFSD") == "1" {
		// Slows the start-up usage walk, so that a test can act before
		// it ends (see TestQuotaShutAfterKill9).
		if d, err := time.ParseDuration(os.Getenv("RWXNFS_TEST_WALK_DELAY")); err == nil {
			quota.WalkHook = func() { time.Sleep(d) }
		}
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type proc struct {
	cmd     *exec.Cmd
	addr    string
	serving serving       // the "nfsd serving" log line
	logs    *bytes.Buffer // read it only once done, or through logged
	mu      sync.Mutex    // guards logs while nfsd runs
	done    chan error
}

type serving struct{ Msg, NFS, Metrics, Version, Root string }

// logged reports whether nfsd has logged a line containing s so far.
func (p *proc) logged(s string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Contains(p.logs.Bytes(), []byte(s))
}

// waitLog waits (up to a minute) until nfsd logs a line containing s.
func waitLog(t *testing.T, p *proc, s string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !p.logged(s); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("nfsd did not log %q", s)
		}
	}
}

// startNFSD runs nfsd over root and waits for its "serving" log line.
// Extra flags come after the defaults and override them.
func startNFSD(t *testing.T, root string, extra ...string) *proc {
	t.Helper()
	p, err := launchNFSD(t, append([]string{"--root", root}, extra...)...)
	if err != nil {
		t.Fatalf("%v\n%s", err, p.logs)
	}
	return p
}

// launchNFSD runs "nfsd serve" with test defaults (loopback, any port,
// JSON logs) followed by args, and waits until it serves (err nil; it is
// killed when the test ends) or exits first (err says so; p.logs holds
// what it logged).
func launchNFSD(t *testing.T, args ...string) (*proc, error) {
	t.Helper()
	args = append([]string{"serve", "--init", "--listen", "127.0.0.1:0", "--portmap-listen", "127.0.0.1:0",
		"--metrics-listen", "off", "--log-format", "json"}, args...)
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "RWXNFS_BE_NFSD=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	p := &proc{cmd: cmd, logs: &bytes.Buffer{}, done: make(chan error, 1)}
	ready := make(chan serving, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Bytes()
			p.mu.Lock()
			p.logs.Write(append(line, '\n'))
			p.mu.Unlock()
			var rec serving
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "nfsd serving" {
				ready <- rec
			}
		}
		io.Copy(io.Discard, stderr)
		p.done <- cmd.Wait()
	}()
	select {
	case p.serving = <-ready:
		p.addr = p.serving.NFS
		return p, nil
	case err := <-p.done:
		return p, fmt.Errorf("nfsd exited before serving: %v", err)
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-p.done
		return p, errors.New("nfsd did not start within 20 s")
	}
}

func client(t *testing.T, addr string) *nfsclient.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := nfsclient.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestSIGTERMExitsCleanly(t *testing.T) {
	p := startNFSD(t, t.TempDir())
	c := client(t, p.addr)
	ctx := context.Background()
	if _, err := c.Mount(ctx, "/volumes/default"); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("nfsd exited with %v after SIGTERM\n%s", err, p.logs)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("nfsd did not exit after SIGTERM\n%s", p.logs)
	}
	if !bytes.Contains(p.logs.Bytes(), []byte(`"nfsd stopped"`)) {
		t.Fatalf("no clean-stop log line:\n%s", p.logs)
	}
}

// TestKill9KeepsCommittedData: whatever a client saw committed (a COMMIT
// reply, or a FILE_SYNC write) is there after nfsd is killed with -9 and
// started again, and handles from before still work.
func TestKill9KeepsCommittedData(t *testing.T) {
	root := t.TempDir()
	p := startNFSD(t, root)
	c := client(t, p.addr)
	ctx := context.Background()
	vol, err := c.Mount(ctx, "/volumes/default")
	if err != nil {
		t.Fatal(err)
	}
	f, _, err := c.Create(ctx, vol, "journal", nfsclient.Guarded, nfsclient.SetAttr{})
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 8<<20)
	rand.Read(data)
	for off := 0; off < len(data); off += 1 << 20 {
		if _, err := c.Write(ctx, f, uint64(off), data[off:off+1<<20], nfsclient.Unstable); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Commit(ctx, f); err != nil {
		t.Fatal(err)
	}
	tail := []byte("synchronous tail")
	if _, err := c.Write(ctx, f, uint64(len(data)), tail, nfsclient.FileSync); err != nil {
		t.Fatal(err)
	}
	want := append(bytes.Clone(data), tail...)

	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	onDisk, err := os.ReadFile(filepath.Join(root, "volumes/default/journal"))
	if err != nil || !bytes.Equal(onDisk, want) {
		t.Fatalf("after kill -9 the file holds %d bytes, want %d committed (%v)", len(onDisk), len(want), err)
	}
	p2 := startNFSD(t, root)
	c2 := client(t, p2.addr)
	var got []byte
	for off := uint64(0); ; {
		b, eof, err := c2.Read(ctx, f, off, 1<<20)
		if err != nil {
			t.Fatalf("READ with a pre-crash handle: %v", err)
		}
		got = append(got, b...)
		off += uint64(len(b))
		if eof || len(b) == 0 {
			break
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read back %d bytes after restart, want %d", len(got), len(want))
	}
}

func TestRefusesBadFlags(t *testing.T) {
	cmd := exec.Command(os.Args[0], "--log-level", "loud")
	cmd.Env = append(os.Environ(), "RWXNFS_BE_NFSD=1")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !bytes.Contains(out, []byte("--log-level")) {
		t.Fatalf("bad --log-level: err %v, output %s", err, out)
	}
}

// needTools skips (fails under make, RWXNFS_STRICT) unless every tool is
// installed; why says which package has them.
func needTools(t *testing.T, why string, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("RWXNFS_STRICT") != "" {
				t.Fatalf("%s not installed (%s)", tool, why)
			}
			t.Skipf("%s not installed (%s)", tool, why)
		}
	}
}

// clientOnPort111 runs nfsd over root with NFS on 127.0.0.1:2049 and its
// portmapper on 127.0.0.1:111, inside a private network namespace (so a
// host rpcbind does not matter), and runs client (a shell command line)
// there until it succeeds, for up to 10 s. It returns the client's output.
func clientOnPort111(t *testing.T, root, client string) []byte {
	t.Helper()
	script := `set -e
ip link set lo up
RWXNFS_BE_NFSD=1 "$1" serve --root "$2" --listen 127.0.0.1:2049 --portmap-listen 127.0.0.1:111 --metrics-listen off 2>"$2/nfsd.log" &
pid=$!
ok=1
for i in $(seq 100); do
  if sh -c "$3" >"$2/client.out" 2>&1; then ok=0; break; fi
  sleep 0.1
done
kill $pid; wait $pid || true
exit $ok`
	out, err := exec.Command("unshare", "--net", "--", "sh", "-c", script, "sh", os.Args[0], root, client).CombinedOutput()
	clientOut, _ := os.ReadFile(filepath.Join(root, "client.out"))
	if err != nil {
		logs, _ := os.ReadFile(filepath.Join(root, "nfsd.log"))
		t.Fatalf("%s: %v\n%s\nclient: %s\nnfsd: %s", client, err, out, clientOut, logs)
	}
	return clientOut
}

// TestClientsFindUsThroughPortmapper runs nfsd with its portmapper on port
// 111 inside a private network namespace and lists a volume with nfs-ls
// given no ports at all: libnfs asks the portmapper for MOUNT and NFS and
// calls MOUNT EXPORT first, as showmount and mount.nfs do.
func TestClientsFindUsThroughPortmapper(t *testing.T) {
	needTools(t, "make deps installs libnfs-utils and util-linux", "nfs-ls", "unshare")
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "volumes/default"), 0o777)
	os.WriteFile(filepath.Join(root, "volumes/default/found-via-portmap"), []byte("x"), 0o644)
	lsOut := clientOnPort111(t, root, `nfs-ls "nfs://127.0.0.1/volumes/default?version=3"`)
	if !bytes.Contains(lsOut, []byte("found-via-portmap")) {
		t.Fatalf("nfs-ls output lacks the file:\n%s", lsOut)
	}
}

// TestRpcinfoListsPortmapper: "rpcinfo -p" against nfsd's portmapper on
// port 111 (in a private network namespace) lists the portmapper itself
// (program 100000), NFS and MOUNT (issue 14 item 6).
func TestRpcinfoListsPortmapper(t *testing.T) {
	needTools(t, "make deps installs rpcbind and util-linux", "rpcinfo", "unshare")
	rpcinfo := clientOnPort111(t, t.TempDir(), "rpcinfo -p 127.0.0.1")
	for _, want := range []string{"100000    2   tcp    111  portmapper", "100000    2   udp    111  portmapper", "100003    3   tcp   2049  nfs", "100005    3   tcp   2049  mountd"} {
		if !bytes.Contains(rpcinfo, []byte(want)) {
			t.Errorf("rpcinfo -p lacks %q:\n%s", want, rpcinfo)
		}
	}
}
