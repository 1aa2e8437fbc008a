// Package toolchain builds the third-party programs that the chart tests
// and the cluster harness run — Kubernetes' control plane and kubectl,
// etcd, helm, kubeconform, the CSI sidecars and the snapshot controller —
// from the Go module proxy, and caches each binary by version, outside
// any work tree, so every checkout on a machine shares one build.
//
// Each program is built in a throwaway "wrapper" module that requires the
// program's module and repeats its replace directives (a module's own
// replaces are ignored when it is a dependency, and several of these
// modules need theirs); replaces that point into the module's own tree
// (Kubernetes' ./staging, external-snapshotter's ./client) are pointed
// at the published module of the same release instead. Their
// dependencies never enter this repository's go.mod.
package toolchain

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Versions. Kubernetes v1.33.13 is the newest release whose staging
// modules the proxy serves in full; the sidecars are the newest whose
// dependencies it serves (see shared notes).
const (
	KubernetesVersion  = "v1.33.13"
	stagingVersion     = "v0.33.13"
	EtcdVersion        = "v3.6.8"
	HelmVersion        = "v3.21.4"
	KubeconformVersion = "v0.8.0"
	ProvisionerVersion = "v6.3.0"
	ResizerVersion     = "v1.12.0"
	SnapshotterVersion = "v8.7.0"
	// GinkgoVersion is the ginkgo e2e.test is built with: its CLI runs
	// the suite's specs in parallel processes.
	GinkgoVersion = "v2.21.0"
)

// kubeLdflags stamps Kubernetes binaries with their release, as its own
// build does (kubelet reports it as the node's version; e2e.test
// compares it with the server's).
const kubeLdflags = "-X k8s.io/component-base/version.gitVersion=" + KubernetesVersion +
	" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=33" +
	" -X k8s.io/client-go/pkg/version.gitVersion=" + KubernetesVersion

// A bundle is one module built in one wrapper module into one or more
// binaries.
type bundle struct {
	name    string
	module  string
	version string
	// pkgs maps each binary's name to the package it is built from.
	pkgs map[string]string
	// localVersion is the version of the published modules that stand
	// for replaces into the module's own tree (Kubernetes' ./staging,
	// etcd's ../api, external-snapshotter's ./client).
	localVersion string
	ldflags      string
	// static builds with CGO_ENABLED=0: the binaries run inside node
	// VMs and images that carry no C library of the right version.
	static bool
	// test builds the one package as a test binary (go test -c):
	// Kubernetes' e2e suite ships that way.
	test bool
	// pins replace modules the proxy does not serve at localVersion
	// ("path => path version").
	pins []string
}

var bundles = []*bundle{
	{
		name: "kubernetes", module: "k8s.io/kubernetes", version: KubernetesVersion,
		pkgs: map[string]string{
			"kube-apiserver":          "k8s.io/kubernetes/cmd/kube-apiserver",
			"kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
			"kube-scheduler":          "k8s.io/kubernetes/cmd/kube-scheduler",
			"kubectl":                 "k8s.io/kubernetes/cmd/kubectl",
		},
		localVersion: stagingVersion,
		ldflags:      kubeLdflags,
	},
	{
		// What runs on a node VM (issue 16): kubelet, and agnhost, the
		// test image Kubernetes' e2e suite execs into.
		name: "kubernetes-node", module: "k8s.io/kubernetes", version: KubernetesVersion,
		pkgs: map[string]string{
			"kubelet": "k8s.io/kubernetes/cmd/kubelet",
			"agnhost": "k8s.io/kubernetes/test/images/agnhost",
		},
		localVersion: stagingVersion,
		ldflags:      kubeLdflags,
		static:       true,
	},
	{
		// Kubernetes' own e2e suite, whose External.Storage specs run
		// against a driver described by a testdriver manifest.
		name: "kubernetes-e2e", module: "k8s.io/kubernetes", version: KubernetesVersion,
		pkgs:         map[string]string{"e2e.test": "k8s.io/kubernetes/test/e2e"},
		localVersion: stagingVersion,
		ldflags:      kubeLdflags,
		test:         true,
		// The proxy serves k8s.io/sample-apiserver only at v0.33.3 (its
		// API types, which the apimachinery specs import, are the same).
		pins: []string{"k8s.io/sample-apiserver => k8s.io/sample-apiserver v0.33.3"},
	},
	{
		name: "ginkgo", module: "github.com/onsi/ginkgo/v2", version: GinkgoVersion,
		pkgs: map[string]string{"ginkgo": "github.com/onsi/ginkgo/v2/ginkgo"},
	},
	{
		name: "etcd", module: "go.etcd.io/etcd/server/v3", version: EtcdVersion,
		pkgs:         map[string]string{"etcd": "go.etcd.io/etcd/server/v3"},
		localVersion: EtcdVersion,
	},
	{
		name: "helm", module: "helm.sh/helm/v3", version: HelmVersion,
		pkgs:    map[string]string{"helm": "helm.sh/helm/v3/cmd/helm"},
		ldflags: "-X helm.sh/helm/v3/internal/version.version=" + HelmVersion,
	},
	{
		name: "kubeconform", module: "github.com/yannh/kubeconform", version: KubeconformVersion,
		pkgs: map[string]string{"kubeconform": "github.com/yannh/kubeconform/cmd/kubeconform"},
	},
	{
		name: "csi-provisioner", module: "github.com/kubernetes-csi/external-provisioner/v6", version: ProvisionerVersion,
		pkgs:    map[string]string{"csi-provisioner": "github.com/kubernetes-csi/external-provisioner/v6/cmd/csi-provisioner"},
		ldflags: "-X main.version=" + ProvisionerVersion,
	},
	{
		name: "csi-resizer", module: "github.com/kubernetes-csi/external-resizer", version: ResizerVersion,
		pkgs:    map[string]string{"csi-resizer": "github.com/kubernetes-csi/external-resizer/cmd/csi-resizer"},
		ldflags: "-X main.version=" + ResizerVersion,
	},
	{
		name: "external-snapshotter", module: "github.com/kubernetes-csi/external-snapshotter/v8", version: SnapshotterVersion,
		pkgs: map[string]string{
			"csi-snapshotter":     "github.com/kubernetes-csi/external-snapshotter/v8/cmd/csi-snapshotter",
			"snapshot-controller": "github.com/kubernetes-csi/external-snapshotter/v8/cmd/snapshot-controller",
		},
		localVersion: SnapshotterVersion,
		ldflags:      "-X main.version=" + SnapshotterVersion,
	},
}

// Binaries the chart tests need (make test), the control plane the
// cluster harness runs, and the CSI components a test runs on it.
var (
	ChartTools        = []string{"helm", "kubeconform"}
	ControlPlaneTools = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "helm"}
	CSITools          = []string{"csi-provisioner", "csi-resizer", "csi-snapshotter", "snapshot-controller"}
	ClusterTools      = append(append([]string(nil), ControlPlaneTools...), CSITools...)
	// NodeTools run inside node VMs; E2ESuite is Kubernetes' e2e binary
	// and the ginkgo CLI that runs it in parallel.
	NodeTools = []string{"kubelet", "agnhost"}
	E2ESuite  = []string{"e2e.test", "ginkgo"}
)

func bundleOf(bin string) (*bundle, error) {
	for _, b := range bundles {
		if _, ok := b.pkgs[bin]; ok {
			return b, nil
		}
	}
	return nil, fmt.Errorf("toolchain: no recipe for %q", bin)
}

// Cache is a directory of built tools: <dir>/<bundle>-<version>/<binary>.
type Cache struct {
	Dir string
	Log io.Writer // build progress; nil for none
}

// DefaultDir is $RWXNFS_TOOLS, else $XDG_CACHE_HOME/rwxnfs/tools, else
// ~/.cache/rwxnfs/tools: outside the work tree, so `make clean` and a
// fresh worktree keep it, and shared by every checkout on the machine.
func DefaultDir() string {
	if d := os.Getenv("RWXNFS_TOOLS"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "rwxnfs", "tools")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = os.TempDir()
	}
	return filepath.Join(home, ".cache", "rwxnfs", "tools")
}

// Default is the cache at DefaultDir, logging to stderr.
func Default() *Cache { return &Cache{Dir: DefaultDir(), Log: os.Stderr} }

func (c *Cache) logf(format string, args ...any) {
	if c.Log != nil {
		fmt.Fprintf(c.Log, "toolchain: "+format+"\n", args...)
	}
}

func (c *Cache) bundleDir(b *bundle) string { return filepath.Join(c.Dir, b.name+"-"+b.version) }

// Built reports where bin is if it is already in the cache, without
// building anything.
func (c *Cache) Built(bin string) (string, bool) {
	b, err := bundleOf(bin)
	if err != nil {
		return "", false
	}
	p := filepath.Join(c.bundleDir(b), bin)
	if _, err := os.Stat(filepath.Join(c.bundleDir(b), ".done")); err != nil {
		return p, false
	}
	return p, true
}

// Path returns bin's path, building its bundle first if needed.
func (c *Cache) Path(ctx context.Context, bin string) (string, error) {
	b, err := bundleOf(bin)
	if err != nil {
		return "", err
	}
	if err := c.ensure(ctx, b); err != nil {
		return "", err
	}
	return filepath.Join(c.bundleDir(b), bin), nil
}

// Ensure builds every listed binary that is not cached yet and returns
// their paths by name.
func (c *Cache) Ensure(ctx context.Context, bins ...string) (map[string]string, error) {
	paths := map[string]string{}
	for _, bin := range bins {
		p, err := c.Path(ctx, bin)
		if err != nil {
			return nil, err
		}
		paths[bin] = p
	}
	return paths, nil
}

// ensure builds b once; concurrent builders (other checkouts, parallel
// test binaries) wait on a lock file and then find it done.
func (c *Cache) ensure(ctx context.Context, b *bundle) error {
	dir := c.bundleDir(b)
	done := filepath.Join(dir, ".done")
	if _, err := os.Stat(done); err == nil {
		return nil
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return err
	}
	unlock, err := lockFile(filepath.Join(c.Dir, "."+b.name+".lock"))
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := os.Stat(done); err == nil {
		return nil
	}
	start := time.Now()
	c.logf("building %s %s (%s) into %s", b.module, b.version, strings.Join(sortedKeys(b.pkgs), ", "), dir)
	work, err := os.MkdirTemp(c.Dir, ".build-"+b.name+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	out := filepath.Join(work, "out")
	if err := c.build(ctx, b, work, out); err != nil {
		return fmt.Errorf("toolchain: building %s %s: %w", b.module, b.version, err)
	}
	os.RemoveAll(dir)
	if err := os.Rename(out, dir); err != nil {
		return err
	}
	var sizes []string
	for _, bin := range sortedKeys(b.pkgs) {
		if fi, err := os.Stat(filepath.Join(dir, bin)); err == nil {
			sizes = append(sizes, fmt.Sprintf("%s %.0f MB", bin, float64(fi.Size())/1e6))
		}
	}
	c.logf("built %s %s in %v: %s", b.name, b.version, time.Since(start).Round(time.Second), strings.Join(sizes, ", "))
	return os.WriteFile(done, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644)
}

func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

func (c *Cache) build(ctx context.Context, b *bundle, work, out string) error {
	modDir, err := ModuleDir(ctx, b.module, b.version)
	if err != nil {
		return err
	}
	reps, err := replaces(filepath.Join(modDir, "go.mod"), b.localVersion)
	if err != nil {
		return err
	}
	var gomod bytes.Buffer
	fmt.Fprintf(&gomod, "module rwxnfs.local/toolbuild/%s\n\ngo 1.26\n\nrequire %s %s\n\n", b.name, b.module, b.version)
	for _, r := range reps {
		if !pinned(b.pins, r) {
			fmt.Fprintf(&gomod, "replace %s\n", r)
		}
	}
	for _, r := range b.pins {
		fmt.Fprintf(&gomod, "replace %s\n", r)
	}
	var tools bytes.Buffer
	tools.WriteString("//go:build tools\n\npackage tools\n\nimport (\n")
	for _, bin := range sortedKeys(b.pkgs) {
		fmt.Fprintf(&tools, "\t_ %q\n", b.pkgs[bin])
	}
	tools.WriteString(")\n")
	if err := os.WriteFile(filepath.Join(work, "go.mod"), gomod.Bytes(), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(work, "tools.go"), tools.Bytes(), 0o644); err != nil {
		return err
	}
	if err := c.goCmd(ctx, work, nil, "mod", "tidy"); err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	var env []string
	if b.static {
		env = append(env, "CGO_ENABLED=0")
	}
	if b.test {
		// go test -c builds one package per call.
		for _, bin := range sortedKeys(b.pkgs) {
			args := []string{"test", "-c", "-ldflags", strings.TrimSpace("-s -w " + b.ldflags), "-o", filepath.Join(out, bin), b.pkgs[bin]}
			if err := c.goCmd(ctx, work, env, args...); err != nil {
				return err
			}
		}
		return nil
	}
	args := []string{"build", "-ldflags", strings.TrimSpace("-s -w " + b.ldflags), "-o", out + "/"}
	for _, bin := range sortedKeys(b.pkgs) {
		args = append(args, b.pkgs[bin])
	}
	if err := c.goCmd(ctx, work, env, args...); err != nil {
		return err
	}
	// go build names each binary after its package's last element;
	// rename where that differs from the tool's name (etcd's package is
	// the module root, ".../server/v3").
	for bin, pkg := range b.pkgs {
		got := filepath.Join(out, pkgBinaryName(pkg))
		if got != filepath.Join(out, bin) {
			if err := os.Rename(got, filepath.Join(out, bin)); err != nil {
				return err
			}
		}
	}
	return nil
}

// pinned reports whether a pin replaces the same module as replace r.
func pinned(pins []string, r string) bool {
	old, _, _ := strings.Cut(r, "=>")
	for _, p := range pins {
		if po, _, _ := strings.Cut(p, "=>"); strings.TrimSpace(po) == strings.TrimSpace(old) {
			return true
		}
	}
	return false
}

// pkgBinaryName is the name go build gives a main package's binary: the
// last path element, or the one before a major-version suffix.
func pkgBinaryName(pkg string) string {
	parts := strings.Split(pkg, "/")
	last := parts[len(parts)-1]
	if len(parts) > 1 && len(last) > 1 && last[0] == 'v' && strings.Trim(last[1:], "0123456789") == "" {
		return parts[len(parts)-2]
	}
	return last
}

func (c *Cache) goCmd(ctx context.Context, dir string, env []string, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	// GOFLAGS from the caller (-mod=vendor, say) must not leak into the
	// wrapper module; GOWORK would pull in this repository's module.
	cmd.Env = append(append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off"), env...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, tail(buf.String(), 4000))
	}
	return nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// ModuleDir downloads mod@version through the module proxy (or finds it
// in the module cache) and returns its directory.
func ModuleDir(ctx context.Context, mod, version string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", mod+"@"+version)
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	outb, err := cmd.Output()
	var info struct{ Dir, Error string }
	if jerr := json.Unmarshal(outb, &info); jerr != nil || info.Dir == "" {
		if info.Error != "" {
			return "", fmt.Errorf("go mod download %s@%s: %s", mod, version, info.Error)
		}
		return "", fmt.Errorf("go mod download %s@%s: %v %s", mod, version, err, outb)
	}
	return info.Dir, nil
}

// replaces reads the replace directives of a module's go.mod and returns
// them as "old => new version" lines. A replace into the module's own
// tree becomes the published module of the same path at localVersion; a
// replace that only forbids a module (etcd's FORBIDDEN_DEPENDENCY) is
// dropped.
func replaces(gomod string, localVersion string) ([]string, error) {
	f, err := os.Open(gomod)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	inBlock := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if i := strings.Index(line, "//"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		switch {
		case line == "replace (":
			inBlock = true
			continue
		case inBlock && line == ")":
			inBlock = false
			continue
		case strings.HasPrefix(line, "replace "):
			line = strings.TrimSpace(strings.TrimPrefix(line, "replace "))
		case !inBlock:
			continue
		}
		old, target, ok := strings.Cut(line, "=>")
		if !ok {
			continue
		}
		oldPath := strings.Fields(old)[0]
		target = strings.TrimSpace(target)
		if strings.HasPrefix(target, "./") || strings.HasPrefix(target, "../") {
			if strings.Contains(target, "FORBIDDEN") {
				continue
			}
			if localVersion == "" {
				return nil, fmt.Errorf("%s: no published module stands for %s => %s", gomod, oldPath, target)
			}
			target = oldPath + " " + localVersion
		}
		out = append(out, oldPath+" => "+target)
	}
	return out, sc.Err()
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
