package kubenode

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Spec is one node VM.
type Spec struct {
	Name   string // node and host name
	IP     string // with prefix, e.g. 10.77.0.11/24
	Gw     string // the host's address on the bridge
	API    string // the apiserver's address (routed via Gw)
	PodNet string // this node's pod CIDR
	// Routes to other nodes' pod CIDRs: "cidr@via".
	Routes []string
	Labels string // kubelet --node-labels
	Taints string // kubelet --register-with-taints
	Tap    string // tap device on the bridge
	MAC    string
	MemMiB int
	CPUs   int
	// Disk, if set, is a raw ext4 image the guest mounts at DiskMount.
	Disk, DiskMount string
	Share           string // host directory shared read-only at /share
	// Images are the names (without .tar) of the tarballs in
	// <Share>/images that this node imports.
	Images   []string
	Netns    string // network namespace qemu runs in
	Console  string // host file for the guest's ttyS1 (logs)
	Protocol string // host file logging the command channel
}

// VM is a running node, driven through its serial console.
type VM struct {
	Name string
	cmd  *exec.Cmd
	in   io.WriteCloser
	log  *os.File

	mu    sync.Mutex
	seq   int
	wait  map[string]chan result
	out   map[string]*strings.Builder
	cur   string
	dead  chan struct{}
	ready chan struct{}
	stdin sync.Mutex // one script line written at a time
}

type result struct {
	out string
	rc  int
	err error
}

// Start boots the VM and returns once its init serves commands (the
// kubelet has been started by then; the node's Ready is the caller's to
// wait for). The qemu process dies with the test binary (Pdeathsig).
func Start(art *Artifacts, s Spec, timeout time.Duration) (*VM, error) {
	if s.CPUs == 0 {
		s.CPUs = 1
	}
	args := []string{"netns", "exec", s.Netns, "qemu-system-x86_64",
		"-accel", "tcg,tb-size=256", "-m", strconv.Itoa(s.MemMiB), "-smp", strconv.Itoa(s.CPUs),
		"-display", "none", "-no-reboot", "-nodefaults",
		"-serial", "stdio", "-serial", "file:" + s.Console,
		"-kernel", art.Kernel, "-initrd", art.Initrd,
		"-netdev", fmt.Sprintf("tap,id=n0,ifname=%s,script=no,downscript=no", s.Tap),
		"-device", "virtio-net-pci,netdev=n0,romfile=,mac=" + s.MAC,
		"-virtfs", "local,path=" + s.Share + ",mount_tag=share,security_model=none,readonly=on",
		"-append", strings.Join([]string{"console=ttyS1", "panic=-1", "no_timer_check", "loglevel=4",
			"kn.name=" + s.Name, "kn.ip=" + s.IP, "kn.gw=" + s.Gw, "kn.api=" + s.API, "kn.pods=" + s.PodNet,
			"kn.routes=" + strings.Join(s.Routes, ","), "kn.labels=" + s.Labels, "kn.taints=" + s.Taints,
			"kn.disk=" + s.DiskMount, "kn.images=" + strings.Join(s.Images, ",")}, " "),
	}
	if s.Disk != "" {
		args = append(args, "-drive", "file="+s.Disk+",if=virtio,format=raw,cache=writeback")
	}
	lf, err := os.Create(s.Protocol)
	if err != nil {
		return nil, err
	}
	v := &VM{Name: s.Name, log: lf, wait: map[string]chan result{}, out: map[string]*strings.Builder{},
		dead: make(chan struct{}), ready: make(chan struct{})}
	v.cmd = exec.Command("ip", args...)
	v.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := v.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	v.cmd.Stderr = lf
	if v.in, err = v.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	fmt.Fprintf(lf, "# ip %s\n", strings.Join(args, " "))
	t0 := time.Now()
	if err := v.cmd.Start(); err != nil {
		lf.Close()
		return nil, err
	}
	go v.read(stdout, t0)
	select {
	case <-v.ready:
		return v, nil
	case <-v.dead:
		return nil, fmt.Errorf("%s: qemu exited during boot; see %s and %s", s.Name, s.Protocol, s.Console)
	case <-time.After(timeout):
		v.Kill()
		return nil, fmt.Errorf("%s: no shell after %v; see %s", s.Name, timeout, s.Console)
	}
}

// read routes the console's replies to the commands waiting for them.
func (v *VM) read(r io.Reader, t0 time.Time) {
	defer func() {
		v.cmd.Wait()
		v.mu.Lock()
		for id, c := range v.wait {
			c <- result{err: fmt.Errorf("%s died while running command %s", v.Name, id)}
		}
		v.wait = map[string]chan result{}
		v.mu.Unlock()
		v.log.Close()
		close(v.dead)
	}()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		fmt.Fprintf(v.log, "%8.2f %s\n", time.Since(t0).Seconds(), line)
		v.mu.Lock()
		switch {
		case strings.HasPrefix(line, "@@READY"):
			select {
			case <-v.ready:
			default:
				close(v.ready)
			}
		case strings.HasPrefix(line, "@@BEGIN "):
			v.cur = strings.TrimPrefix(line, "@@BEGIN ")
		case strings.HasPrefix(line, "@@END "):
			f := strings.Fields(line)
			if len(f) == 3 {
				rc, _ := strconv.Atoi(f[2])
				if c := v.wait[f[1]]; c != nil {
					c <- result{out: v.out[f[1]].String(), rc: rc}
					delete(v.wait, f[1])
					delete(v.out, f[1])
				}
			}
			v.cur = ""
		case v.cur != "":
			if o := v.out[v.cur]; o != nil {
				o.WriteString(line + "\n")
			}
		}
		v.mu.Unlock()
	}
}

// Sh runs a shell script on the node (as root, in the node's own
// namespaces: not in any pod) and returns its combined output and exit
// status. Scripts run one at a time per node; a script's encoded form
// must fit one console line (~3 KB of script). The error is for the
// channel (timeout, VM gone), not for a non-zero status.
func (v *VM) Sh(ctx context.Context, script string) (string, int, error) {
	c := make(chan result, 1)
	v.mu.Lock()
	select {
	case <-v.dead:
		v.mu.Unlock()
		return "", -1, fmt.Errorf("%s is not running", v.Name)
	default:
	}
	v.seq++
	id := fmt.Sprintf("c%d", v.seq)
	line := id + " " + base64.StdEncoding.EncodeToString([]byte(script)) + "\n"
	if len(line) > 4000 { // the tty's canonical line limit is 4095
		v.mu.Unlock()
		return "", -1, fmt.Errorf("script too long for the console (%d bytes encoded)", len(line))
	}
	v.wait[id] = c
	v.out[id] = &strings.Builder{}
	fmt.Fprintf(v.log, "   >>> %s: %s\n", id, script)
	v.mu.Unlock()
	v.stdin.Lock()
	_, err := io.WriteString(v.in, line)
	v.stdin.Unlock()
	if err != nil {
		return "", -1, err
	}
	select {
	case r := <-c:
		return r.out, r.rc, r.err
	case <-ctx.Done():
		return "", -1, fmt.Errorf("%s: %q: %w", v.Name, script, ctx.Err())
	}
}

// Kill ends the VM at once (a power cut).
func (v *VM) Kill() {
	if v.cmd != nil && v.cmd.Process != nil {
		v.cmd.Process.Kill()
		select {
		case <-v.dead:
		case <-time.After(10 * time.Second):
		}
	}
}

// WaitImported waits until the node has imported every image it was
// given (the import runs in the background while kubelet starts).
func (v *VM) WaitImported(ctx context.Context) error {
	out, rc, err := v.Sh(ctx, "i=0; until [ -e /run/kn-imported ]; do i=$((i+1)); [ $i -gt 900 ] && exit 1; sleep 1; done; if [ -e /run/kn-import-failed ]; then cat /run/kn-import-failed /var/log/import.log; exit 2; fi")
	if err == nil && rc != 0 {
		err = fmt.Errorf("%s: importing images failed or took over 15 minutes (rc %d): %s", v.Name, rc, out)
	}
	return err
}

// Dead is closed when the VM's qemu has exited.
func (v *VM) Dead() <-chan struct{} { return v.dead }
