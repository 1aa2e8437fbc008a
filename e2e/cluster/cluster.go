// Package cluster runs a real Kubernetes control plane for tests: etcd,
// kube-apiserver, kube-controller-manager and (optionally)
// kube-scheduler, v1.33.13 built from the Go module proxy (package
// e2e/toolchain), as host processes inside a network namespace the test
// owns. It issues its own CA and client certificates, mints kubeconfigs
// for ServiceAccounts (so a test runs components on the exact RBAC a
// chart grants them), and drives kubectl and helm against it.
//
// The install test (e2e/install) uses it with no nodes; a test with real
// kubelets (VM nodes, issue 16) passes an address on its bridge as
// Config.Addr so nodes can reach the apiserver, starts the scheduler, and
// issues kubelet certificates with ClientKubeconfig.
package cluster

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/rwxnfs/rwxnfs/e2e/toolchain"
)

// Config says where and how to run the control plane.
type Config struct {
	// Netns is the network namespace everything runs in (see NewNetns).
	Netns *Netns
	// Dir holds certificates, etcd's data, kubeconfigs and logs/.
	Dir string
	// Addr is the address the apiserver serves on (default 127.0.0.1).
	Addr string
	// Port is the apiserver's port (default 6443). A cluster without
	// kube-proxy sets Addr to the first address of ServiceCIDR and Port
	// to 443: pods then reach the apiserver at the "kubernetes"
	// Service's address, which kubelet gives them, with nothing between.
	Port int
	// ServiceCIDR is the Services' range (default 10.96.0.0/16).
	ServiceCIDR string
	// Scheduler starts kube-scheduler (pods need it; the install test
	// runs none).
	Scheduler bool
	// Tools are the binaries to run (default: toolchain.Default()).
	Tools *toolchain.Cache
	// Logf reports progress (default: none).
	Logf func(format string, args ...any)
}

// Cluster is a running control plane.
type Cluster struct {
	cfg        Config
	pki        *pki
	procs      *procs
	bins       map[string]string
	saKey      string
	Server     string // https://addr:port
	Kubeconfig string // admin (system:masters)
	CAFile     string
}

const (
	defaultAPIPort = 6443
	etcdPort       = 2379
)

// Start starts etcd, kube-apiserver, kube-controller-manager and, if asked,
// kube-scheduler, and returns once the apiserver is ready. Stop it with
// Stop whatever happens next.
func Start(ctx context.Context, cfg Config) (c *Cluster, err error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1"
	}
	if cfg.Port == 0 {
		cfg.Port = defaultAPIPort
	}
	if cfg.ServiceCIDR == "" {
		cfg.ServiceCIDR = "10.96.0.0/16"
	}
	if cfg.Tools == nil {
		cfg.Tools = toolchain.Default()
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	bins, err := cfg.Tools.Ensure(ctx, toolchain.ControlPlaneTools...)
	if err != nil {
		return nil, err
	}
	p, err := newPKI(filepath.Join(cfg.Dir, "pki"))
	if err != nil {
		return nil, err
	}
	c = &Cluster{cfg: cfg, pki: p, bins: bins, CAFile: p.CAFile,
		procs:  &procs{dir: cfg.Dir, ns: cfg.Netns},
		Server: "https://" + net.JoinHostPort(cfg.Addr, fmt.Sprint(cfg.Port))}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	start := time.Now()
	if err := c.startEtcd(); err != nil {
		return c, err
	}
	if err := c.startAPIServer(ctx); err != nil {
		return c, err
	}
	cfg.Logf("cluster: apiserver ready at %s in %v", c.Server, time.Since(start).Round(time.Millisecond))
	if err := c.startControllerManager(); err != nil {
		return c, err
	}
	if cfg.Scheduler {
		if err := c.startScheduler(); err != nil {
			return c, err
		}
	}
	return c, nil
}

// Stop stops every process the cluster started, newest first.
func (c *Cluster) Stop() {
	c.procs.stopAll()
}

// Tool is the path of one of the toolchain's binaries (kubectl, helm,
// csi-provisioner...), built first if it is not cached yet.
func (c *Cluster) Tool(ctx context.Context, name string) (string, error) {
	if p, ok := c.bins[name]; ok {
		return p, nil
	}
	return c.cfg.Tools.Path(ctx, name)
}

// StartProcess runs a program (nfsd, a CSI sidecar...) in the cluster's
// network namespace, logged with the control plane's logs and stopped
// with it.
func (c *Cluster) StartProcess(name, bin string, args []string, env ...string) (*Process, error) {
	return c.procs.start(c.cfg.Netns, name, bin, args, env)
}

// StartProcessIn is StartProcess in another namespace (a node's, say),
// still stopped with the cluster.
func (c *Cluster) StartProcessIn(ns *Netns, name, bin string, args []string, env ...string) (*Process, error) {
	return c.procs.start(ns, name, bin, args, env)
}

// Run runs a program in the namespace to completion and returns its
// standard output.
func (c *Cluster) Run(ctx context.Context, bin string, args ...string) (string, error) {
	return c.procs.run(ctx, nil, nil, bin, args...)
}

func (c *Cluster) startEtcd() error {
	data := filepath.Join(c.cfg.Dir, "etcd")
	url := fmt.Sprintf("http://127.0.0.1:%d", etcdPort)
	_, err := c.procs.start(c.cfg.Netns, "etcd", c.bins["etcd"], []string{
		"--name=test", "--data-dir=" + data,
		"--listen-client-urls=" + url, "--advertise-client-urls=" + url,
		"--listen-peer-urls=http://127.0.0.1:2380", "--initial-advertise-peer-urls=http://127.0.0.1:2380",
		"--initial-cluster=test=http://127.0.0.1:2380",
		// A test cluster's state need not survive a power cut.
		"--unsafe-no-fsync", "--log-level=warn",
	}, nil)
	return err
}

func (c *Cluster) startAPIServer(ctx context.Context) error {
	first, err := firstServiceIP(c.cfg.ServiceCIDR)
	if err != nil {
		return err
	}
	ips := []net.IP{net.ParseIP(c.cfg.Addr), net.ParseIP("127.0.0.1"), first}
	crt, key, err := c.pki.issue("apiserver", "kube-apiserver", nil, ips,
		[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"})
	if err != nil {
		return err
	}
	saPub, saKey, err := c.pki.serviceAccountKeys()
	if err != nil {
		return err
	}
	c.saKey = saKey
	kcrt, kkey, err := c.pki.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client", []string{"system:masters"}, nil, nil)
	if err != nil {
		return err
	}
	_, err = c.procs.start(c.cfg.Netns, "kube-apiserver", c.bins["kube-apiserver"], []string{
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", etcdPort),
		"--bind-address=" + c.cfg.Addr, "--advertise-address=" + c.cfg.Addr,
		fmt.Sprintf("--secure-port=%d", c.cfg.Port),
		"--tls-cert-file=" + crt, "--tls-private-key-file=" + key,
		"--client-ca-file=" + c.pki.CAFile,
		"--kubelet-client-certificate=" + kcrt, "--kubelet-client-key=" + kkey,
		"--kubelet-preferred-address-types=InternalIP",
		"--authorization-mode=Node,RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + saPub, "--service-account-signing-key-file=" + saKey,
		"--service-cluster-ip-range=" + c.cfg.ServiceCIDR,
		"--allow-privileged=true",
		// One apiserver, no kube-proxy: nothing would use the endpoints
		// of the "kubernetes" Service.
		"--endpoint-reconciler-type=none",
		"--enable-priority-and-fairness=false",
		"--v=1",
	}, nil)
	if err != nil {
		return err
	}
	admCrt, admKey, err := c.pki.issue("admin", "admin", []string{"system:masters"}, nil, nil)
	if err != nil {
		return err
	}
	c.Kubeconfig = filepath.Join(c.cfg.Dir, "admin.kubeconfig")
	if err := writeKubeconfig(c.Kubeconfig, c.Server, c.pki.CAFile, "admin", admCrt, admKey, ""); err != nil {
		return err
	}
	return c.waitReady(ctx)
}

func firstServiceIP(cidr string) (net.IP, error) {
	_, n, err := net.ParseCIDR(cidr)
	if err != nil {
		return nil, err
	}
	ip := append(net.IP(nil), n.IP...)
	ip[len(ip)-1]++
	return ip, nil
}

// waitReady polls /readyz with kubectl from inside the namespace (the
// apiserver is not reachable from the host's network).
func (c *Cluster) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(2 * time.Minute)
	var last error
	for time.Now().Before(deadline) {
		for _, p := range c.procs.list {
			if exited, err := p.Exited(); exited {
				return fmt.Errorf("%s exited (%v); log %s:\n%s", p.Name, err, p.Log, tail(p.Output(), 3000))
			}
		}
		out, err := c.Kubectl(ctx, "get", "--raw", "/readyz")
		if err == nil && strings.TrimSpace(out) == "ok" {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
	return fmt.Errorf("apiserver not ready after 2m: %v", last)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// ClientKubeconfig issues a client certificate for user in groups and
// writes a kubeconfig for it (e.g. system:node:<name> in system:nodes
// for a kubelet).
func (c *Cluster) ClientKubeconfig(name, user string, groups ...string) (string, error) {
	crt, key, err := c.pki.issue(name, user, groups, nil, nil)
	if err != nil {
		return "", err
	}
	path := filepath.Join(c.cfg.Dir, name+".kubeconfig")
	return path, writeKubeconfig(path, c.Server, c.pki.CAFile, user, crt, key, "")
}

func (c *Cluster) startControllerManager() error {
	kc, err := c.ClientKubeconfig("controller-manager", "system:kube-controller-manager")
	if err != nil {
		return err
	}
	_, err = c.procs.start(c.cfg.Netns, "kube-controller-manager", c.bins["kube-controller-manager"], []string{
		"--kubeconfig=" + kc, "--authentication-kubeconfig=" + kc, "--authorization-kubeconfig=" + kc,
		"--bind-address=127.0.0.1", "--secure-port=10257",
		"--leader-elect=false",
		"--service-account-private-key-file=" + c.saKey,
		"--root-ca-file=" + c.pki.CAFile,
		// Each controller on its own ServiceAccount, with the bootstrap
		// roles a real cluster gives it (the persistent-volume binder may
		// update claims; the controller manager's own user may not).
		"--use-service-account-credentials=true",
		"--service-cluster-ip-range=" + c.cfg.ServiceCIDR,
		// No cloud, no kube-proxy: the controllers for those stay off.
		"--controllers=*,-nodeipam,-cloud-node-lifecycle,-service,-route",
		"--v=1",
	}, nil)
	return err
}

func (c *Cluster) startScheduler() error {
	kc, err := c.ClientKubeconfig("scheduler", "system:kube-scheduler")
	if err != nil {
		return err
	}
	_, err = c.procs.start(c.cfg.Netns, "kube-scheduler", c.bins["kube-scheduler"], []string{
		"--kubeconfig=" + kc, "--authentication-kubeconfig=" + kc, "--authorization-kubeconfig=" + kc,
		"--bind-address=127.0.0.1", "--secure-port=10259", "--leader-elect=false", "--v=1",
	}, nil)
	return err
}
