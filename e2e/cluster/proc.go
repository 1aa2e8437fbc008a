package cluster

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is a program the harness runs inside the network namespace,
// its output in <Dir>/logs/<name>.log.
type Process struct {
	Name string
	Log  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Netns is a network namespace the harness made; every process and
// listener of a test lives in it, so nothing reaches the host's network.
type Netns struct {
	Name string
}

// NewNetns makes (after removing any leftover of an earlier crashed run,
// and killing what still ran in it) a network namespace with loopback up
// and the given extra addresses on lo (e.g. a Service's ClusterIP, so
// that address is reachable inside the namespace without kube-proxy).
func NewNetns(name string, loAddrs ...string) (*Netns, error) {
	if name == "" {
		return nil, fmt.Errorf("cluster: empty netns name")
	}
	n := &Netns{Name: name}
	n.Delete()
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add %s: %v %s", name, err, out)
	}
	if err := n.IP("link", "set", "lo", "up"); err != nil {
		return nil, err
	}
	for _, a := range loAddrs {
		if !strings.Contains(a, "/") {
			a += map[bool]string{true: "/128", false: "/32"}[strings.Contains(a, ":")]
		}
		if err := n.IP("addr", "add", a, "dev", "lo"); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// IP runs `ip ARGS` inside the namespace.
func (n *Netns) IP(args ...string) error {
	out, err := exec.Command("ip", append([]string{"-n", n.Name}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip -n %s %s: %v %s", n.Name, strings.Join(args, " "), err, out)
	}
	return nil
}

// Delete kills whatever runs in the namespace and removes it.
func (n *Netns) Delete() {
	if out, err := exec.Command("ip", "netns", "pids", n.Name).Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			var pid int
			if _, err := fmt.Sscan(f, &pid); err == nil && pid > 1 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	exec.Command("ip", "netns", "del", n.Name).Run()
}

// Command returns cmd wrapped to run inside the namespace (`ip netns exec`
// execs it in place, so the process is the program itself).
func (n *Netns) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	if n == nil {
		return exec.CommandContext(ctx, name, args...)
	}
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// procs is the set of processes one harness started.
type procs struct {
	mu   sync.Mutex
	list []*Process
	dir  string
	ns   *Netns
}

// start runs name with args in the namespace, output to its log. The
// process dies with the test binary (Pdeathsig) even if the test is
// killed.
func (ps *procs) start(ns *Netns, name, bin string, args []string, env []string) (*Process, error) {
	if err := os.MkdirAll(filepath.Join(ps.dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	logPath := filepath.Join(ps.dir, "logs", name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(f, "%s $ %s %s\n", time.Now().UTC().Format(time.RFC3339), bin, strings.Join(args, " "))
	cmd := ns.Command(context.Background(), bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Process{Name: name, Log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	ps.mu.Lock()
	ps.list = append(ps.list, p)
	ps.mu.Unlock()
	return p, nil
}

// Exited reports whether the process has ended, and how.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Stop sends SIGTERM, waits up to grace, then SIGKILLs.
func (p *Process) Stop(grace time.Duration) {
	if exited, _ := p.Exited(); exited {
		return
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// Output is what the process has logged so far.
func (p *Process) Output() string {
	data, _ := os.ReadFile(p.Log)
	return string(data)
}

// stopAll stops processes newest first (sidecars before the apiserver
// before etcd).
func (ps *procs) stopAll() {
	ps.mu.Lock()
	list := append([]*Process(nil), ps.list...)
	ps.mu.Unlock()
	for i := len(list) - 1; i >= 0; i-- {
		list[i].Stop(5 * time.Second)
	}
}

// run runs a command in the namespace to completion.
func (ps *procs) run(ctx context.Context, env []string, stdin []byte, bin string, args ...string) (string, error) {
	cmd := ps.ns.Command(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %v: %s", filepath.Base(bin), strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}
