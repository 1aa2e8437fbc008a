// Package kube is the two-node cluster test (make e2e-cluster, issue 16):
// a real Kubernetes v1.33.13 control plane on the host, three qemu node
// VMs running containerd and kubelet, the rwxnfs chart installed with
// helm, and pods on two nodes sharing one ReadWriteMany volume.
//
// # The cluster
//
// Everything lives in one network namespace (RWXNFS_CLUSTER_NETNS,
// default rwxnfs-cluster) with a bridge and no route out:
//
//	10.77.0.1/24   the host side of the bridge
//	10.96.0.1:443  kube-apiserver (also on the bridge: see below)
//	10.77.0.10     storage-0: nfsd's node (hostNetwork, pinned by
//	               nodeSelector, tainted rwxnfs.io/storage=true:NoSchedule)
//	10.77.0.11/12  node-1, node-2: the workers (rwxnfs.io/client=true),
//	               where the CSI node plugin runs and test pods go
//	10.244.N.0/24  node N's pod network (CNI bridge, host-local); every
//	               node and the host route the others' via their node
//
// There is no kube-proxy and no DNS. Pods reach the apiserver at the
// "kubernetes" Service's address (the first of the service CIDR,
// 10.96.0.1:443) because the apiserver itself serves there, and nodes
// reach nfsd at storage-0's address (the chart's hostNetwork mode). The
// cluster is built once per test binary (TestMain) and shared by every
// case; it is torn down at the end, on SIGINT/SIGTERM, and (qemu and the
// control plane die with the test binary by Pdeathsig) a new run first
// removes whatever a crashed run left in its namespace.
//
// # Harness API (for the cases)
//
//	h.Kubectl(ctx, args...) (string, error)       kubectl as admin
//	h.Apply(ctx, yaml) error                      kubectl apply -f -
//	h.Delete(ctx, args...) error                  kubectl delete --wait ARGS
//	h.WaitPod(ctx, ns, name, cond, timeout) error cond: a phase (Running,
//	                                              Succeeded) or "Ready"
//	h.WaitPods(ctx, ns, selector, n, timeout)     n pods Ready
//	h.Exec(ctx, ns, pod, container, cmd...)       kubectl exec
//	h.Logs(ctx, ns, pod, container)               kubectl logs
//	h.Node(name) *kubenode.VM; vm.Sh(ctx, script) (out, rc, err)
//	                                              a root shell on a node VM
//	h.Admin(ctx) (addr, token, caPEM string, err) nfsd's admin API
//	h.NFSDPod(ctx) (string, error); h.DeleteNFSDPod(ctx) error
//	h.Kubeconfig() string                         admin kubeconfig (for
//	                                              Kubernetes' e2e.test)
//	h.Namespace, h.StorageClass, h.Workers, h.ServerIP
package kube

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/rwxnfs/rwxnfs/e2e/cluster"
	"github.com/rwxnfs/rwxnfs/e2e/internal/kubenode"
	"github.com/rwxnfs/rwxnfs/e2e/internal/testimages"
	"github.com/rwxnfs/rwxnfs/e2e/toolchain"
)

// Addresses of the test network (see the package doc).
const (
	hostIP     = "10.77.0.1"
	apiIP      = "10.96.0.1"
	serviceNet = "10.96.0.0/16"
	// ServerIP is storage-0's address: where nfsd serves (NFS, portmapper,
	// admin API).
	ServerIP = "10.77.0.10"
)

// nodeDef is one node of the cluster.
type nodeDef struct {
	name, ip, pods string
	storage        bool
}

var nodeDefs = []nodeDef{
	{"storage-0", "10.77.0.10", "10.244.0.0/24", true},
	{"node-1", "10.77.0.11", "10.244.1.0/24", false},
	{"node-2", "10.77.0.12", "10.244.2.0/24", false},
}

// Options say where the harness works.
type Options struct {
	Netns     string // network namespace name
	Dir       string // cache (packages, initramfs, test images); kept across runs
	RunDir    string // this run's logs, certificates, disk image; wiped at start
	ImagesDir string // make images' output (nfsd, csi-nfs-controller, csi-nfs-node .tar)
	ImageTag  string
	ChartDir  string
	Values    string // values file for helm
	NodeMiB   int    // memory of each worker VM
	Log       io.Writer
}

// Harness is the running cluster.
type Harness struct {
	*cluster.Cluster
	opt     Options
	netns   *cluster.Netns
	vms     map[string]*kubenode.VM
	mu      sync.Mutex
	stopped bool
	start   time.Time
	// Namespace is the chart's release namespace; StorageClass its class.
	Namespace, StorageClass string
	// Workers are the nodes test pods run on.
	Workers []string
	// Times records how long each step took, for the report.
	Times []Step
}

// Step is one measured part of the bring-up.
type Step struct {
	Name string
	D    time.Duration
}

func (h *Harness) logf(format string, args ...any) {
	fmt.Fprintf(h.opt.Log, "%s kube: %s\n", time.Now().UTC().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// step logs and records the time since the previous step.
func (h *Harness) step(name string, since time.Time) time.Time {
	d := time.Since(since)
	h.Times = append(h.Times, Step{name, d})
	h.logf("step %-28s %8v (total %v)", name, d.Round(10*time.Millisecond), time.Since(h.start).Round(10*time.Millisecond))
	return time.Now()
}

// Up builds the cluster: tools, node image, test images, network,
// control plane, node VMs, the chart. On error, what was started is
// stopped before it returns.
func Up(ctx context.Context, opt Options) (h *Harness, err error) {
	if opt.Log == nil {
		opt.Log = os.Stderr
	}
	h = &Harness{opt: opt, vms: map[string]*kubenode.VM{}, start: time.Now(),
		Namespace: "rwxnfs", StorageClass: "rwxnfs", Workers: []string{"node-1", "node-2"}}
	defer func() {
		if err != nil {
			h.Down()
			h = nil
		}
	}()
	t := time.Now()
	tools := toolchain.Default()
	tools.Log = opt.Log
	bins, err := tools.Ensure(ctx, append(append([]string(nil), toolchain.ControlPlaneTools...), toolchain.NodeTools...)...)
	if err != nil {
		return h, err
	}
	t = h.step("tools", t)
	art, err := kubenode.Build(opt.Dir, bins["kubelet"], opt.Log)
	if err != nil {
		return h, err
	}
	t = h.step("node image", t)
	os.RemoveAll(opt.RunDir)
	share := filepath.Join(opt.RunDir, "share")
	if err := os.MkdirAll(filepath.Join(share, "images"), 0o755); err != nil {
		return h, err
	}
	imgs, err := h.shareImages(ctx, tools, filepath.Join(share, "images"))
	if err != nil {
		return h, err
	}
	t = h.step("test images", t)

	// The network: a bridge, one tap per node, the apiserver's address,
	// and routes to every node's pod network.
	h.netns, err = cluster.NewNetns(opt.Netns)
	if err != nil {
		return h, err
	}
	ipc := [][]string{
		{"link", "add", "br0", "type", "bridge", "forward_delay", "0", "stp_state", "0"},
		{"addr", "add", hostIP + "/24", "dev", "br0"},
		{"addr", "add", apiIP + "/32", "dev", "br0"},
		{"link", "set", "br0", "up"},
	}
	for i, n := range nodeDefs {
		tap := fmt.Sprintf("tap%d", i)
		ipc = append(ipc, []string{"tuntap", "add", "dev", tap, "mode", "tap"},
			[]string{"link", "set", tap, "master", "br0", "up"})
		_ = n
	}
	for _, c := range ipc {
		if err := h.netns.IP(c...); err != nil {
			return h, err
		}
	}
	for _, n := range nodeDefs {
		if err := h.netns.IP("route", "add", n.pods, "via", n.ip); err != nil {
			return h, err
		}
	}
	t = h.step("network", t)

	h.Cluster, err = cluster.Start(ctx, cluster.Config{Netns: h.netns, Dir: filepath.Join(opt.RunDir, "cp"),
		Addr: apiIP, Port: 443, ServiceCIDR: serviceNet, Scheduler: true, Tools: tools,
		Logf: func(f string, a ...any) { h.logf(f, a...) }})
	if err != nil {
		return h, err
	}
	t = h.step("control plane", t)

	// Kubelets trust the apiserver's client certificate by this CA.
	if ca, err := os.ReadFile(h.CAFile); err != nil {
		return h, err
	} else if err := os.WriteFile(filepath.Join(share, "ca.crt"), ca, 0o644); err != nil {
		return h, err
	}
	specs := make([]kubenode.Spec, len(nodeDefs))
	for i, n := range nodeDefs {
		kc, err := h.ClientKubeconfig("kubelet-"+n.name, "system:node:"+n.name, "system:nodes")
		if err != nil {
			return h, err
		}
		dir := filepath.Join(share, "nodes", n.name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return h, err
		}
		if err := inlineKubeconfig(kc, filepath.Join(dir, "kubeconfig")); err != nil {
			return h, err
		}
		s := kubenode.Spec{Name: n.name, IP: n.ip + "/24", Gw: hostIP, API: apiIP, PodNet: n.pods,
			Tap: fmt.Sprintf("tap%d", i), MAC: fmt.Sprintf("52:54:00:77:00:%02x", 10+i),
			MemMiB: opt.NodeMiB, Share: share, Netns: opt.Netns,
			Console:  filepath.Join(opt.RunDir, "logs", n.name+".console.log"),
			Protocol: filepath.Join(opt.RunDir, "logs", n.name+".shell.log")}
		for _, o := range nodeDefs {
			if o.name != n.name {
				s.Routes = append(s.Routes, o.pods+"@"+o.ip)
			}
		}
		// Each node imports what may run on it: storage-0 only nfsd.
		for _, img := range imgs {
			if img == "pause" || (img == "nfsd") == n.storage {
				s.Images = append(s.Images, img)
			}
		}
		if n.storage {
			// nfsd's data on a real disk file system (ext4), as hostPath.
			s.Disk, s.DiskMount = filepath.Join(opt.RunDir, "storage-0.ext4"), "/srv/rwxnfs"
			s.Taints = "rwxnfs.io/storage=true:NoSchedule"
			s.Labels = "rwxnfs.io/storage=true"
			s.MemMiB = 1536
			if out, err := exec.Command("sh", "-c", "truncate -s 8G \"$1\" && mkfs.ext4 -q -F \"$1\"", "sh", s.Disk).CombinedOutput(); err != nil {
				return h, fmt.Errorf("making storage-0's disk: %v %s", err, out)
			}
		} else {
			s.Labels = "rwxnfs.io/client=true"
		}
		specs[i] = s
	}
	if err := os.MkdirAll(filepath.Join(opt.RunDir, "logs"), 0o755); err != nil {
		return h, err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(specs))
	for i := range specs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			t0 := time.Now()
			vm, err := kubenode.Start(art, specs[i], 8*time.Minute)
			if err != nil {
				errs[i] = err
				return
			}
			h.mu.Lock()
			h.vms[specs[i].Name] = vm
			h.mu.Unlock()
			h.logf("%s: shell up in %v (images imported, kubelet started)", specs[i].Name, time.Since(t0).Round(10*time.Millisecond))
		}(i)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return h, err
		}
	}
	t = h.step("VMs booted", t)
	if err := cluster.Eventually(ctx, "nodes Ready", 5*time.Minute, func() (bool, string, error) {
		st, err := h.nodeStates(ctx)
		if err != nil {
			return false, err.Error(), nil
		}
		for _, n := range nodeDefs {
			if st[n.name] != "True" {
				return false, fmt.Sprint(st), nil
			}
		}
		return true, "", nil
	}); err != nil {
		return h, err
	}
	t = h.step("nodes Ready", t)
	for _, n := range nodeDefs {
		if err := h.Node(n.name).WaitImported(ctx); err != nil {
			return h, err
		}
	}
	t = h.step("images imported", t)

	if out, err := h.Helm(ctx, "install", "rwxnfs", opt.ChartDir, "--namespace", h.Namespace, "--create-namespace",
		"-f", opt.Values, "--set", "image.tag="+opt.ImageTag, "--set", "nfsd.network.hostIP="+ServerIP); err != nil {
		return h, fmt.Errorf("helm install: %v\n%s", err, out)
	}
	t = h.step("helm install", t)
	for _, c := range []struct {
		sel string
		n   int
	}{
		{"app.kubernetes.io/component=nfsd", 1},
		{"app.kubernetes.io/component=controller", 1},
		{"app.kubernetes.io/component=node", len(h.Workers)},
	} {
		if err := h.WaitPods(ctx, h.Namespace, c.sel, c.n, 5*time.Minute); err != nil {
			return h, err
		}
		t = h.step("ready: "+c.sel, t)
	}
	h.logf("cluster up in %v", time.Since(h.start).Round(10*time.Millisecond))
	return h, nil
}

// shareImages puts every image tarball the nodes import into dir: make
// images' three and the test images (pause, busybox, agnhost, sidecars).
// Hard links where possible: the 9p share must hold the files, not links
// the guest cannot follow.
func (h *Harness) shareImages(ctx context.Context, tools *toolchain.Cache, dir string) (names []string, err error) {
	var files []string
	for _, n := range []string{"nfsd", "csi-nfs-controller", "csi-nfs-node"} {
		p := filepath.Join(h.opt.ImagesDir, n+".tar")
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%s missing: run make images first (%v)", p, err)
		}
		files = append(files, p)
	}
	extra, err := testimages.Write(ctx, filepath.Join(h.opt.Dir, "testimages"), tools)
	if err != nil {
		return nil, err
	}
	for _, f := range append(files, extra...) {
		dst := filepath.Join(dir, filepath.Base(f))
		names = append(names, strings.TrimSuffix(filepath.Base(f), ".tar"))
		if err := os.Link(f, dst); err != nil {
			data, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			if err := os.WriteFile(dst, data, 0o644); err != nil {
				return nil, err
			}
		}
	}
	return names, nil
}

// inlineKubeconfig copies a kubeconfig with its files' contents inline
// (the node reads it from the share, where the host's paths mean nothing).
func inlineKubeconfig(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	var ferr error
	out := regexp.MustCompile(`(?m)^(\s*)(certificate-authority|client-certificate|client-key): (\S+)$`).ReplaceAllStringFunc(string(data), func(line string) string {
		m := regexp.MustCompile(`^(\s*)(\S+): (\S+)$`).FindStringSubmatch(line)
		b, err := os.ReadFile(m[3])
		if err != nil {
			ferr = err
		}
		return m[1] + m[2] + "-data: " + base64.StdEncoding.EncodeToString(b)
	})
	if ferr != nil {
		return ferr
	}
	return os.WriteFile(dst, []byte(out), 0o644)
}

// nodeStates maps node name to its Ready condition's status.
func (h *Harness) nodeStates(ctx context.Context) (map[string]string, error) {
	var list struct {
		Items []struct {
			Metadata struct{ Name string }
			Status   struct {
				Conditions []struct{ Type, Status string }
			}
		}
	}
	if err := h.Get(ctx, &list, "nodes"); err != nil {
		return nil, err
	}
	st := map[string]string{}
	for _, n := range list.Items {
		st[n.Metadata.Name] = "?"
		for _, c := range n.Status.Conditions {
			if c.Type == "Ready" {
				st[n.Metadata.Name] = c.Status
			}
		}
	}
	return st, nil
}

// Down stops the node VMs and the control plane and removes the
// namespace. Safe to call more than once, from any goroutine.
func (h *Harness) Down() {
	h.mu.Lock()
	if h.stopped {
		h.mu.Unlock()
		return
	}
	h.stopped = true
	vms := h.vms
	h.mu.Unlock()
	t0 := time.Now()
	for _, vm := range vms {
		vm.Kill()
	}
	if h.Cluster != nil {
		h.Cluster.Stop()
	}
	if h.netns != nil {
		h.netns.Delete()
	}
	h.logf("torn down in %v", time.Since(t0).Round(10*time.Millisecond))
}

// Kubeconfig is the admin kubeconfig's path.
func (h *Harness) Kubeconfig() string { return h.Cluster.Kubeconfig }

// Node is a node VM by name (storage-0, node-1, node-2), or nil.
func (h *Harness) Node(name string) *kubenode.VM {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.vms[name]
}

// Delete runs kubectl delete ARGS and waits for the objects to go.
func (h *Harness) Delete(ctx context.Context, args ...string) error {
	_, err := h.Kubectl(ctx, append([]string{"delete", "--wait=true", "--ignore-not-found"}, args...)...)
	return err
}

type podStatus struct {
	Metadata struct{ Name string }
	Spec     struct{ NodeName string }
	Status   struct {
		Phase      string
		Conditions []struct{ Type, Status string }
	}
}

func (p podStatus) ready() bool {
	for _, c := range p.Status.Conditions {
		if c.Type == "Ready" {
			return c.Status == "True"
		}
	}
	return false
}

// WaitPod waits until pod ns/name is in phase cond (Pending, Running,
// Succeeded, Failed) or, with cond "Ready", has its Ready condition.
// Failed ends the wait early unless that is what is awaited.
func (h *Harness) WaitPod(ctx context.Context, ns, name, cond string, timeout time.Duration) error {
	return cluster.Eventually(ctx, fmt.Sprintf("pod %s/%s %s", ns, name, cond), timeout, func() (bool, string, error) {
		var p podStatus
		if err := h.Get(ctx, &p, "pod", "-n", ns, name); err != nil {
			return false, err.Error(), nil
		}
		if cond == "Ready" {
			return p.ready(), p.Status.Phase, nil
		}
		if p.Status.Phase == "Failed" && cond != "Failed" {
			return false, "", fmt.Errorf("pod failed: %s", h.describe(ctx, ns, name))
		}
		return p.Status.Phase == cond, p.Status.Phase, nil
	})
}

// WaitPods waits until n pods matching the label selector are Ready.
func (h *Harness) WaitPods(ctx context.Context, ns, selector string, n int, timeout time.Duration) error {
	err := cluster.Eventually(ctx, fmt.Sprintf("%d pods %s Ready in %s", n, selector, ns), timeout, func() (bool, string, error) {
		var list struct{ Items []podStatus }
		if err := h.Get(ctx, &list, "pods", "-n", ns, "-l", selector); err != nil {
			return false, err.Error(), nil
		}
		ready, states := 0, []string{}
		for _, p := range list.Items {
			if p.ready() {
				ready++
			}
			states = append(states, p.Metadata.Name+"@"+p.Spec.NodeName+"="+p.Status.Phase)
		}
		return ready >= n, strings.Join(states, " "), nil
	})
	if err != nil {
		out, _ := h.Kubectl(ctx, "describe", "pods", "-n", ns, "-l", selector)
		return fmt.Errorf("%v\n%s", err, tail(out, 4000))
	}
	return nil
}

func (h *Harness) describe(ctx context.Context, ns, name string) string {
	out, _ := h.Kubectl(ctx, "describe", "pod", "-n", ns, name)
	return tail(out, 4000)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// Exec runs cmd in a pod's container ("" for the first) and returns its
// standard output.
func (h *Harness) Exec(ctx context.Context, ns, pod, container string, cmd ...string) (string, error) {
	args := []string{"exec", "-n", ns, pod}
	if container != "" {
		args = append(args, "-c", container)
	}
	return h.Kubectl(ctx, append(append(args, "--"), cmd...)...)
}

// Logs is a pod container's log.
func (h *Harness) Logs(ctx context.Context, ns, pod, container string) (string, error) {
	args := []string{"logs", "-n", ns, pod}
	if container != "" {
		args = append(args, "-c", container)
	}
	return h.Kubectl(ctx, args...)
}

// NFSDPod is the name of the running nfsd pod.
func (h *Harness) NFSDPod(ctx context.Context) (string, error) {
	out, err := h.Kubectl(ctx, "get", "pods", "-n", h.Namespace, "-l", "app.kubernetes.io/component=nfsd", "-o", "jsonpath={.items[0].metadata.name}")
	return strings.TrimSpace(out), err
}

// DeleteNFSDPod deletes the nfsd pod (its StatefulSet makes a new one)
// and returns without waiting for the new one.
func (h *Harness) DeleteNFSDPod(ctx context.Context) error {
	pod, err := h.NFSDPod(ctx)
	if err != nil {
		return err
	}
	_, err = h.Kubectl(ctx, "delete", "pod", "-n", h.Namespace, pod, "--wait=false")
	return err
}

// Admin returns nfsd's admin API address (host:port on storage-0), its
// token and the CA certificate (PEM) its TLS certificate is signed by,
// from the chart's Secrets.
func (h *Harness) Admin(ctx context.Context) (addr, token, caPEM string, err error) {
	var s struct{ Data map[string]string }
	if err = h.Get(ctx, &s, "secret", "-n", h.Namespace, "rwxnfs-admin-token"); err != nil {
		return
	}
	tok, _ := base64.StdEncoding.DecodeString(s.Data["token"])
	var tls struct{ Data map[string]string }
	if err = h.Get(ctx, &tls, "secret", "-n", h.Namespace, "rwxnfs-admin-tls"); err != nil {
		return
	}
	ca, _ := base64.StdEncoding.DecodeString(tls.Data["ca.crt"])
	return ServerIP + ":9103", strings.TrimSpace(string(tok)), string(ca), nil
}

// JSON is kubectl get ... -o json decoded into a generic map, for
// one-off fields.
func (h *Harness) JSON(ctx context.Context, args ...string) (map[string]any, error) {
	var m map[string]any
	out, err := h.Kubectl(ctx, append(append([]string{"get"}, args...), "-o", "json")...)
	if err != nil {
		return nil, err
	}
	return m, json.Unmarshal([]byte(out), &m)
}
