package e2e

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The bed's private network: nothing routes out of it.
const (
	bridge   = "br0"
	serverIP = "10.78.0.1"
)

// netns is the bed's network namespace. RWXNFS_E2E_NETNS names another,
// so two runs on one machine (say, two checkouts) do not tear down each
// other's beds.
var netns = envOr("RWXNFS_E2E_NETNS", "rwxnfs-e2e")

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func nodeIP(i int) string { return fmt.Sprintf("10.78.0.%d", 11+i) }

// bed is one test's world: a netns with a bridge, our nfsd on it, and
// qemu nodes on taps. Everything it starts is torn down by t.Cleanup and,
// on SIGINT/SIGTERM, by the handler in TestMain.
type bed struct {
	t       *testing.T
	art     *artifacts
	dir     string // logs and server root for this test
	root    string // nfsd --root
	logDir  string
	sockDir string
	nodes   []*node
	nfsd    *exec.Cmd
	nfsdN   int // starts, for log names
	waitCh  chan struct{}
	start   time.Time
	// adminTCP, if set, puts nfsd's admin API on TCP (host:port on the
	// bridge) instead of the unix socket, for clients in the nodes.
	adminTCP string
	// vm, if set, changes how node i boots (the power-loss server).
	vm func(i int) vmSpec
}

// vmSpec overrides a node's defaults: its initramfs, memory (MiB) and
// extra qemu arguments (a disk, say).
type vmSpec struct {
	initrd, mem string
	qemu        []string
}

// newBed provisions (once per run), cleans up leftovers of a crashed run,
// creates the netns, starts nfsd and boots n nodes in parallel.
func newBed(t *testing.T, n int) *bed {
	t.Helper()
	if os.Getenv("RWXNFS_E2E") != "1" {
		t.Skip("e2e: set RWXNFS_E2E=1 (or run make e2e / make e2e-smoke) to boot qemu nodes")
	}
	start := time.Now()
	art := provision(t)
	b := &bed{t: t, art: art, start: start}
	b.dir = filepath.Join(runDir, sanitize(t.Name()))
	b.logDir = b.dir
	b.root = filepath.Join(b.dir, "root")
	os.RemoveAll(b.dir)
	if err := os.MkdirAll(b.root, 0o755); err != nil {
		t.Fatal(err)
	}
	cleanupLeftovers()
	var err error
	if b.sockDir, err = os.MkdirTemp("", "rwxnfs-e2e-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(b.sockDir) })
	t.Cleanup(func() {
		b.teardown()
		t.Logf("wall time %s: %v (logs in %s)", t.Name(), time.Since(start).Round(10*time.Millisecond), b.dir)
		logf("%s wall time %v", t.Name(), time.Since(start).Round(10*time.Millisecond))
	})
	unregister := register(b.teardown)
	t.Cleanup(unregister)
	if err := netUp(n); err != nil {
		t.Fatal(err)
	}
	b.startNFSD()
	b.nodes = make([]*node, n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) { defer wg.Done(); b.nodes[i], errs[i] = b.bootRetry(i) }(i)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("bed up: nfsd + %d nodes in %v", n, time.Since(start).Round(10*time.Millisecond))
	return b
}

func netUp(n int) error {
	script := fmt.Sprintf(`set -e
ip netns add %[1]s
ip -n %[1]s link set lo up
ip -n %[1]s link add %[2]s type bridge forward_delay 0 stp_state 0
ip -n %[1]s addr add %[3]s/24 dev %[2]s
ip -n %[1]s link set %[2]s up
for i in $(seq 0 %[4]d); do
  ip -n %[1]s tuntap add dev tap$i mode tap
  ip -n %[1]s link set tap$i master %[2]s up
done`, netns, bridge, serverIP, n-1)
	_, err := run("sh", "-c", script)
	return err
}

// cleanupLeftovers kills whatever a crashed earlier run left in our
// netns (its qemus and nfsd are the only processes there) and deletes it.
func cleanupLeftovers() {
	out, err := exec.Command("ip", "netns", "pids", netns).Output()
	if err != nil {
		return // no such netns
	}
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	time.Sleep(200 * time.Millisecond)
	exec.Command("ip", "netns", "del", netns).Run()
}

var (
	teardownMu sync.Mutex
	stopping   atomic.Bool // set by the signal handler: start nothing new
)

// teardown is idempotent: it can run from t.Cleanup and the signal handler.
func (b *bed) teardown() {
	teardownMu.Lock()
	defer teardownMu.Unlock()
	for _, n := range b.nodes {
		if n != nil {
			n.kill()
		}
	}
	b.stopNFSD(syscall.SIGTERM)
	cleanupLeftovers()
}

// inNetns wraps a command so it runs in the bed's netns with private
// tmpfs over /run and /var/lib/nfs (ip netns exec gives it its own mount
// namespace), so no daemon state touches the host.
func inNetns(args ...string) *exec.Cmd {
	sh := `mount -t tmpfs none /run && mkdir -p /var/lib/nfs && mount -t tmpfs none /var/lib/nfs && exec "$@"`
	cmd := exec.Command("ip", append([]string{"netns", "exec", netns, "sh", "-c", sh, "sh"}, args...)...)
	// If the test binary itself is killed (-9, no cleanup runs), take the
	// VM or server down with it rather than leave it spinning; "ip netns
	// exec" and sh exec into it, so the death signal reaches it. The
	// next run's cleanupLeftovers removes the netns.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// The admin socket lives in a short temp dir: a test's log directory can
// be longer than a unix socket path may be (108 bytes).
func (b *bed) adminSock() string  { return filepath.Join(b.sockDir, "admin.sock") }
func (b *bed) adminToken() string { return filepath.Join(b.dir, "admin-token") }

// adminAddr is where nfsd serves its admin API: the unix socket, or TCP
// on the bridge when a test sets adminTCP (for clients in the nodes).
func (b *bed) adminAddr() string {
	if b.adminTCP != "" {
		return b.adminTCP
	}
	return "unix:" + b.adminSock()
}

// startNFSD starts our server in the netns, with the portmapper on port
// 111 of the bridge address (the Linux client finds NLM only there), and
// waits for its "nfsd serving" log line.
func (b *bed) startNFSD() {
	b.t.Helper()
	os.WriteFile(b.adminToken(), []byte("e2e-admin-token-0123456789\n"), 0o600)
	b.nfsdN++
	logPath := filepath.Join(b.logDir, fmt.Sprintf("nfsd.%d.log", b.nfsdN))
	lf, err := os.Create(logPath)
	if err != nil {
		b.t.Fatal(err)
	}
	cmd := inNetns(b.art.nfsd, "serve", "--root", b.root, "--listen", serverIP+":2049", "--portmap-listen", serverIP+":111",
		"--metrics-listen", "off", "--log-format", "json", "--log-level", "debug",
		"--admin-listen", b.adminAddr(), "--admin-token-file", b.adminToken())
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = lf, pw
	if err := cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	b.nfsd = cmd
	ready := make(chan bool, 1)
	b.waitCh = make(chan struct{})
	go func(wc chan struct{}) {
		cmd.Wait()
		pw.Close()
		lf.Close()
		close(wc)
	}(b.waitCh)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			lf.Write(append(sc.Bytes(), '\n'))
			var rec struct{ Msg string }
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "nfsd serving" {
				select {
				case ready <- true:
				default:
				}
			}
		}
	}()
	select {
	case <-ready:
	case <-b.waitCh:
		b.t.Fatalf("nfsd exited before serving; see %s", logPath)
	case <-time.After(60 * time.Second):
		b.t.Fatalf("nfsd did not start in 60s; see %s", logPath)
	}
}

// stopNFSD signals nfsd (SIGKILL: a crash) and waits for it to exit.
func (b *bed) stopNFSD(sig syscall.Signal) {
	if b.nfsd == nil || b.nfsd.Process == nil {
		return
	}
	b.nfsd.Process.Signal(sig)
	select {
	case <-b.waitCh:
	case <-time.After(20 * time.Second):
		b.nfsd.Process.Kill()
		<-b.waitCh
	}
	b.nfsd = nil
}

// restartNFSD kills nfsd with SIGKILL and starts it again on the same
// root and addresses.
func (b *bed) restartNFSD() time.Duration {
	t0 := time.Now()
	b.stopNFSD(syscall.SIGKILL)
	b.startNFSD()
	return time.Since(t0)
}

// admin runs "nfsd admin ..." against this bed's server.
func (b *bed) admin(args ...string) (string, error) {
	a := append([]string{"admin", "--addr", b.adminAddr(), "--token-file", b.adminToken()}, args...)
	if b.adminTCP != "" {
		return run("ip", append([]string{"netns", "exec", netns, b.art.nfsd}, a...)...)
	}
	return run(b.art.nfsd, a...)
}

// volPath is a volume's directory on the server's disk.
func (b *bed) volPath(vol string) string { return filepath.Join(b.root, "volumes", vol) }

// node is one qemu VM driven through its serial console.
type node struct {
	b      *bed
	idx    int
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	mu     sync.Mutex
	seq    int
	wait   map[string]chan result
	out    map[string]*strings.Builder
	cur    string // id whose output is being collected
	dead   chan struct{}
	boots  int
	logF   *os.File
	readyC chan struct{}
}

type result struct {
	out string
	rc  int
	err error
}

// bootRetry boots node i, once more if the first attempt dies: a TCG
// guest on a loaded host can fail the kernel's early timer checks.
func (b *bed) bootRetry(i int) (*node, error) {
	n, err := b.boot(i)
	if err != nil && !stopping.Load() {
		logf("node%d: boot failed, retrying once: %v", i, err)
		n, err = b.boot(i)
	}
	return n, err
}

// boot starts node i (again, after a crash: same name, IP and MAC) and
// waits for its init to report ready.
func (b *bed) boot(i int) (*node, error) {
	n := &node{b: b, idx: i, name: fmt.Sprintf("node%d", i), wait: map[string]chan result{},
		out: map[string]*strings.Builder{}, dead: make(chan struct{}), readyC: make(chan struct{})}
	if b.nodes != nil && b.nodes[i] != nil {
		n.boots = b.nodes[i].boots
	}
	n.boots++
	lf, err := os.Create(filepath.Join(b.logDir, fmt.Sprintf("%s.%d.log", n.name, n.boots)))
	if err != nil {
		return nil, err
	}
	n.logF = lf
	mac := fmt.Sprintf("52:54:00:78:00:%02x", 11+i)
	spec := vmSpec{initrd: b.art.initrd, mem: nodeMemory()}
	if b.vm != nil {
		spec = b.vm(i)
	}
	args := []string{"qemu-system-x86_64", "-accel", "tcg", "-m", spec.mem, "-smp", "1", "-display", "none",
		"-no-reboot", "-nodefaults", "-serial", "stdio",
		"-kernel", b.art.kernel, "-initrd", spec.initrd,
		"-netdev", fmt.Sprintf("tap,id=n0,ifname=tap%d,script=no,downscript=no", i),
		"-device", "virtio-net-pci,netdev=n0,romfile=,mac=" + mac,
		"-append", fmt.Sprintf("console=ttyS0 quiet panic=-1 no_timer_check e2e.ip=%s e2e.host=%s e2e.srv=%s", nodeIP(i), n.name, serverIP)}
	n.cmd = inNetns(append(args, spec.qemu...)...)
	stdout, err := n.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	n.cmd.Stderr = lf
	if n.stdin, err = n.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	fmt.Fprintf(lf, "# %s\n", strings.Join(n.cmd.Args, " "))
	t0 := time.Now()
	if err := n.cmd.Start(); err != nil {
		return nil, err
	}
	go n.read(stdout, t0)
	select {
	case <-n.readyC:
		logf("%s boot %d ready in %v", n.name, n.boots, time.Since(t0).Round(10*time.Millisecond))
		return n, nil
	case <-n.dead:
		return nil, fmt.Errorf("%s exited during boot; see %s", n.name, lf.Name())
	case <-time.After(180 * time.Second):
		n.kill()
		return nil, fmt.Errorf("%s not ready after 180s; see %s", n.name, lf.Name())
	}
}

// read logs every console line (with seconds since boot) and routes
// replies to the commands waiting for them.
func (n *node) read(r io.Reader, t0 time.Time) {
	defer func() {
		n.cmd.Wait()
		n.mu.Lock()
		for id, c := range n.wait {
			c <- result{err: fmt.Errorf("%s died while running command %s", n.name, id)}
		}
		n.wait = map[string]chan result{}
		n.mu.Unlock()
		n.logF.Close()
		close(n.dead)
	}()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<22)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		fmt.Fprintf(n.logF, "%8.2f %s\n", time.Since(t0).Seconds(), line)
		n.mu.Lock()
		switch {
		case strings.HasPrefix(line, "@@READY"):
			close(n.readyC)
		case strings.HasPrefix(line, "@@BEGIN "):
			n.cur = strings.TrimPrefix(line, "@@BEGIN ")
		case strings.HasPrefix(line, "@@END "):
			f := strings.Fields(line)
			if len(f) == 3 {
				rc, _ := strconv.Atoi(f[2])
				if c := n.wait[f[1]]; c != nil {
					c <- result{out: n.out[f[1]].String(), rc: rc}
					delete(n.wait, f[1])
					delete(n.out, f[1])
				}
			}
			n.cur = ""
		case n.cur != "":
			if o := n.out[n.cur]; o != nil {
				o.WriteString(line + "\n")
			}
		}
		n.mu.Unlock()
	}
}

// start sends a shell script to the node; the returned channel yields
// its output and exit status. Scripts run one at a time per node.
func (n *node) start(script string) <-chan result {
	c := make(chan result, 1)
	n.mu.Lock()
	defer n.mu.Unlock()
	select {
	case <-n.dead:
		c <- result{err: fmt.Errorf("%s is not running", n.name)}
		return c
	default:
	}
	n.seq++
	id := fmt.Sprintf("c%d", n.seq)
	line := id + " " + base64.StdEncoding.EncodeToString([]byte(script)) + "\n"
	if len(line) > 4000 { // the console's canonical line limit is 4095
		c <- result{err: fmt.Errorf("script too long for the console (%d bytes)", len(line))}
		return c
	}
	n.wait[id] = c
	n.out[id] = &strings.Builder{}
	fmt.Fprintf(n.logF, "   >>> %s: %s\n", id, script)
	if _, err := io.WriteString(n.stdin, line); err != nil {
		delete(n.wait, id)
		c <- result{err: err}
	}
	return c
}

// sh runs script and waits up to timeout.
func (n *node) sh(script string, timeout time.Duration) (string, int, error) {
	select {
	case r := <-n.start(script):
		return r.out, r.rc, r.err
	case <-time.After(timeout):
		return "", -1, fmt.Errorf("%s: no reply in %v to %q", n.name, timeout, script)
	}
}

// must runs script and fails the test unless it exits 0.
func (n *node) must(script string, timeout time.Duration) string {
	n.b.t.Helper()
	out, rc, err := n.sh(script, timeout)
	if err != nil || rc != 0 {
		n.b.t.Fatalf("%s: %q: rc=%d err=%v\n%s", n.name, script, rc, err, out)
	}
	return out
}

// mount mounts the server's volume at /mnt/<vol>.
func (n *node) mount(vol, opts string) {
	n.b.t.Helper()
	n.must(fmt.Sprintf("mkdir -p /mnt/%[1]s && mount.nfs %[2]s:/volumes/%[1]s /mnt/%[1]s -o %[3]s && grep ' /mnt/%[1]s ' /proc/mounts", vol, serverIP, opts), 90*time.Second)
}

// kill ends the VM at once, as a power cut would.
func (n *node) kill() {
	if n.cmd != nil && n.cmd.Process != nil {
		n.cmd.Process.Kill()
		select {
		case <-n.dead:
		case <-time.After(10 * time.Second):
		}
	}
}
