// Package testimages writes, as OCI tarballs, every image a test
// cluster's nodes need besides rwxnfs's own (make images): the pod
// sandbox, the images Kubernetes' e2e suite runs its pods from, and the
// CSI sidecars the chart's controller runs. Nodes cannot pull (the test
// network has no route out), so each is imported under the exact name
// the chart or the suite asks for, built from what this machine has:
// Debian's busybox-static, our e2enode, agnhost and the sidecars built
// from the Go module proxy (package e2e/toolchain).
//
// They are stand-ins, not the upstream images: busybox is Debian's build
// (whatever version Debian ships) and the pause image is a shell loop.
// What the suite needs from them is the commands it execs.
package testimages

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/rwxnfs/rwxnfs/e2e/toolchain"
	"github.com/rwxnfs/rwxnfs/images"
)

// Names the images are imported under.
const (
	Pause   = "registry.k8s.io/pause:3.10"
	BusyBox = "registry.k8s.io/e2e-test-images/busybox:1.36.1-1"
	Agnhost = "registry.k8s.io/e2e-test-images/agnhost:2.53"
	// The external storage suite runs its "exec a file on the volume"
	// spec in nginx and its multi-pod specs in jessie-dnsutils, each
	// with a shell command of its own: busybox under those names.
	Nginx          = "registry.k8s.io/e2e-test-images/nginx:1.14-4"
	JessieDnsutils = "registry.k8s.io/e2e-test-images/jessie-dnsutils:1.7"
)

// Sidecar images, at the names charts/rwxnfs/values.yaml gives them.
var (
	Provisioner = "registry.k8s.io/sig-storage/csi-provisioner:" + toolchain.ProvisionerVersion
	Resizer     = "registry.k8s.io/sig-storage/csi-resizer:" + toolchain.ResizerVersion
	Snapshotter = "registry.k8s.io/sig-storage/csi-snapshotter:" + toolchain.SnapshotterVersion
)

// pauseScript is the sandbox's process: it holds the pod's namespaces
// and exits on the TERM containerd sends when the pod stops (as PID 1 a
// signal without a handler would be ignored).
const pauseScript = `trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done`

// Write builds every image into dir (one <short name>.tar each; dir also
// caches the Debian packages) and returns the tarballs' paths. tools
// builds agnhost and the sidecars on first use.
func Write(ctx context.Context, dir string, tools *toolchain.Cache) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	deb := &images.Debian{Dir: filepath.Join(dir, "debian"), Log: tools.Log}
	bbRoot, err := deb.Unpack("busybox-static")
	if err != nil {
		return nil, err
	}
	busybox := filepath.Join(bbRoot, "bin", "busybox")
	applets, err := appletPaths(ctx, busybox)
	if err != nil {
		return nil, err
	}
	bins, err := tools.Ensure(ctx, "agnhost", "csi-provisioner", "csi-resizer", "csi-snapshotter")
	if err != nil {
		return nil, err
	}
	e2enode := filepath.Join(dir, "e2enode")
	if err := goBuildStatic(ctx, e2enode, "github.com/rwxnfs/rwxnfs/e2e/cmd/e2enode"); err != nil {
		return nil, err
	}

	withBusybox := func() *images.Rootfs {
		r := images.NewRootfs()
		r.Dir("/tmp", os.ModeSticky|0o777, 0, 0)
		r.Dir("/root", 0o700, 0, 0)
		r.Data("/etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"), 0o644)
		r.Data("/etc/group", []byte("root:x:0:\nnogroup:x:65534:\n"), 0o644)
		r.File("/bin/busybox", busybox, 0o755)
		for _, a := range applets {
			if a != "/bin/busybox" {
				r.Symlink(a, "/bin/busybox")
			}
		}
		return r
	}
	type spec struct {
		file, ref string
		rootfs    func() (*images.Rootfs, error)
		cfg       images.Config
	}
	sidecar := func(name string) func() (*images.Rootfs, error) {
		return func() (*images.Rootfs, error) {
			r := images.NewRootfs()
			images.MergedUsr(r)
			r.Dir("/tmp", os.ModeSticky|0o777, 0, 0)
			return r, images.ELFAt(r, "/", "/"+name, bins[name])
		}
	}
	specs := []spec{
		{"pause.tar", Pause, func() (*images.Rootfs, error) { return withBusybox(), nil },
			images.Config{Entrypoint: []string{"/bin/sh", "-c", pauseScript}}},
		{"busybox.tar", BusyBox, func() (*images.Rootfs, error) {
			r := withBusybox()
			r.File("/usr/bin/e2enode", e2enode, 0o755)
			return r, nil
		}, images.Config{Cmd: []string{"sh"}}},
		{"nginx.tar", Nginx, func() (*images.Rootfs, error) { return withBusybox(), nil }, images.Config{Cmd: []string{"sh"}}},
		{"jessie-dnsutils.tar", JessieDnsutils, func() (*images.Rootfs, error) { return withBusybox(), nil }, images.Config{Cmd: []string{"sh"}}},
		{"agnhost.tar", Agnhost, func() (*images.Rootfs, error) {
			r := withBusybox()
			r.File("/agnhost", bins["agnhost"], 0o755)
			return r, nil
		}, images.Config{Entrypoint: []string{"/agnhost"}, Cmd: []string{"pause"}}},
		{"csi-provisioner.tar", Provisioner, sidecar("csi-provisioner"), images.Config{Entrypoint: []string{"/csi-provisioner"}}},
		{"csi-resizer.tar", Resizer, sidecar("csi-resizer"), images.Config{Entrypoint: []string{"/csi-resizer"}}},
		{"csi-snapshotter.tar", Snapshotter, sidecar("csi-snapshotter"), images.Config{Entrypoint: []string{"/csi-snapshotter"}}},
	}
	var out []string
	for _, s := range specs {
		r, err := s.rootfs()
		if err != nil {
			return nil, fmt.Errorf("testimages: %s: %w", s.ref, err)
		}
		img, err := images.Build(r, s.cfg)
		if err != nil {
			return nil, fmt.Errorf("testimages: %s: %w", s.ref, err)
		}
		_, tag, _ := strings.Cut(s.ref[strings.LastIndex(s.ref, "/"):], ":")
		path := filepath.Join(dir, s.file)
		if err := images.WriteOCITarball(path, img, s.ref, tag); err != nil {
			return nil, fmt.Errorf("testimages: %s: %w", s.ref, err)
		}
		out = append(out, path)
	}
	return out, nil
}

// appletPaths lists where busybox's applets live ("/bin/sh",
// "/usr/bin/awk", ...), as the binary itself reports them.
func appletPaths(ctx context.Context, busybox string) ([]string, error) {
	out, err := exec.CommandContext(ctx, busybox, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("testimages: %s --list-full: %w", busybox, err)
	}
	var paths []string
	for _, l := range strings.Fields(string(out)) {
		paths = append(paths, "/"+strings.TrimPrefix(l, "/"))
	}
	return paths, nil
}

// goBuildStatic builds a package of this module with CGO_ENABLED=0 (the
// images carry no C library for it).
func goBuildStatic(ctx context.Context, out, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// NodeWithoutHelper is a broken variant of the node plugin image: the
// same csi-nfs and Debian helpers minus mount.nfs, as on a node image
// someone built without nfs-common. Deployed with the chart's value
// image.node, it shows what a user of such an image is told.
const NodeWithoutHelper = "rwxnfs/csi-nfs-node-nomount"

// WriteNodeWithoutHelper writes that variant as <dir>/csi-nfs-node-nomount.tar
// tagged tag, from csiNFS (the static binary make images built) and
// Debian's packages cached under debianDir.
func WriteNodeWithoutHelper(dir, csiNFS, debianDir, tag string, log io.Writer) (string, error) {
	deb := &images.Debian{Dir: debianDir, Log: log}
	root, err := deb.Unpack(images.NodePackages...)
	if err != nil {
		return "", err
	}
	r, err := images.NodeRootfs(csiNFS, root)
	if err != nil {
		return "", err
	}
	for _, p := range []string{"/usr/sbin/mount.nfs", "/usr/sbin/mount.nfs4"} {
		if !r.Has(p) {
			return "", fmt.Errorf("testimages: the node image has no %s to take out (images.NodePrograms changed?)", p)
		}
		r.Remove(p)
	}
	img, err := images.Build(r, images.Config{Entrypoint: []string{"/usr/bin/csi-nfs"}})
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "csi-nfs-node-nomount.tar")
	return path, images.WriteOCITarball(path, img, images.Repository("csi-nfs-node-nomount")+":"+tag, tag)
}
