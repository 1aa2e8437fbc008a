// Package kubenode builds and runs Kubernetes node VMs for the cluster
// tests (e2e/kube): qemu TCG guests booting Debian's kernel from an
// initramfs that carries containerd, runc, the CNI plugins (bridge,
// host-local, loopback), kubelet and the kernel modules a node needs
// (the NFS client, overlay, bridge, veth, br_netfilter, 9p, ext4).
//
// Nothing is installed on the host: Debian packages are downloaded and
// unpacked (images.Debian), kubelet comes static from e2e/toolchain.
// Container images are not packed into the initramfs: the host shares a
// directory of OCI tarballs read-only over virtio-9p and the guest
// imports them with `ctr -n k8s.io images import` at boot (the
// initramfs stays the same across runs, and 300 MB of images are not
// held in guest memory twice).
//
// Each VM's serial console is a command channel (VM.Sh): the guest's init
// runs one base64-encoded shell script per input line and brackets its
// output with @@BEGIN/@@END markers, as the e2e test bed's nodes do. A
// second serial port carries containerd's and kubelet's logs to a file
// on the host.
package kubenode

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/rwxnfs/rwxnfs/images"
)

// Debian packages whose programs the node runs.
var nodePackages = []string{
	"busybox-static", "containerd", "runc", "containernetworking-plugins",
	"nfs-common", "rpcbind", "mount", "libtirpc-common", "netbase",
}

// Programs taken from the unpacked packages, with their libraries.
// mount.nfs and friends are for tests that mount by hand on a node (the
// CSI node plugin's pod brings its own); util-linux mount is what kubelet
// and the plugin expect, ahead of busybox's.
var nodePrograms = []string{
	"/usr/bin/containerd", "/usr/bin/containerd-shim-runc-v2", "/usr/bin/ctr", "/usr/sbin/runc",
	"/usr/lib/cni/bridge", "/usr/lib/cni/host-local", "/usr/lib/cni/loopback",
	"/sbin/mount.nfs", "/sbin/umount.nfs", "/sbin/rpc.statd", "/sbin/rpcbind", "/usr/sbin/rpcinfo",
	"/bin/mount", "/bin/umount",
}

// Modules loaded at boot, with their dependencies in modprobe's order.
var nodeModules = []string{
	"virtio_pci", "virtio_net", "virtio_blk", "ext4", "nfsv3", "overlay", "bridge", "veth",
	"br_netfilter", "llc", "stp", "9p", "9pnet_virtio",
}

// Artifacts are what a node boots: Debian's kernel and our initramfs.
type Artifacts struct {
	Kernel, Initrd string
}

// Build downloads and unpacks the Debian packages (cached under dir),
// assembles the initramfs with kubelet (a static binary) and returns
// where both are. The initramfs is cached by a hash of its inputs.
func Build(dir, kubelet string, log io.Writer) (*Artifacts, error) {
	logf := func(format string, args ...any) {
		if log != nil {
			fmt.Fprintf(log, "kubenode: "+format+"\n", args...)
		}
	}
	deb := &images.Debian{Dir: filepath.Join(dir, "debian"), Log: log}
	kpkg, err := kernelPackage()
	if err != nil {
		return nil, err
	}
	kver := strings.TrimPrefix(kpkg, "linux-image-")
	kroot, err := deb.Unpack(kpkg)
	if err != nil {
		return nil, err
	}
	// The unpacked .deb has no modules.dep: make it once.
	if _, err := os.Stat(filepath.Join(kroot, "lib/modules", kver, "modules.dep")); err != nil {
		if out, err := exec.Command("depmod", "-b", kroot, kver).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("depmod: %v %s", err, out)
		}
	}
	root, err := deb.Unpack(nodePackages...)
	if err != nil {
		return nil, err
	}
	r := images.NewRootfs()
	images.MergedUsr(r)
	if err := images.ELF(r, root, nodePrograms...); err != nil {
		return nil, err
	}
	r.File("/usr/bin/busybox", filepath.Join(root, "bin/busybox"), 0o755)
	r.File("/usr/bin/kubelet", kubelet, 0o755)
	for _, f := range []string{"/etc/netconfig", "/etc/services", "/etc/protocols", "/etc/rpc"} {
		r.File(f, filepath.Join(root, f), 0o644)
	}
	deps, err := exec.Command("modprobe", append([]string{"-d", kroot, "-S", kver, "--show-depends", "-a"}, nodeModules...)...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("modprobe --show-depends: %v %s", err, deps)
	}
	var order []string
	seen := map[string]bool{}
	modBase := filepath.Join(kroot, "lib/modules", kver) + "/"
	for _, line := range strings.Split(string(deps), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "insmod" || seen[f[1]] {
			continue // "builtin ..." lines: nothing to load
		}
		seen[f[1]] = true
		rel := strings.TrimPrefix(f[1], modBase)
		r.File("/usr/lib/modules/"+kver+"/"+rel, f[1], 0o644)
		order = append(order, rel)
	}
	r.Data("/etc/modules.list", []byte(strings.Join(order, "\n")+"\n"), 0o644)
	r.Data("/init", []byte(initScript), 0o755)
	r.Data("/etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\n_rpc:x:100:65534::/run/rpcbind:/bin/false\nstatd:x:101:65534::/var/lib/nfs:/bin/false\nnobody:x:65534:65534:nobody:/:/bin/false\n"), 0o644)
	r.Data("/etc/group", []byte("root:x:0:\nnogroup:x:65534:\n"), 0o644)
	r.Data("/etc/nsswitch.conf", []byte("passwd: files\ngroup: files\nhosts: files\nservices: files\nprotocols: files\nrpc: files\n"), 0o644)
	for _, d := range []string{"/proc", "/sys", "/dev", "/run", "/tmp", "/root", "/var/lib/nfs/sm", "/var/lib/nfs/sm.bak", "/mnt", "/share"} {
		r.Dir(d, 0o755, 0, 0)
	}

	h := sha256.New()
	fi, err := os.Stat(kubelet)
	if err != nil {
		return nil, err
	}
	fmt.Fprintln(h, root, kroot, order, initScript, kubelet, fi.Size(), fi.ModTime().UnixNano())
	out := filepath.Join(dir, "node-initrd-"+hex.EncodeToString(h.Sum(nil))[:12]+".img")
	art := &Artifacts{Kernel: filepath.Join(kroot, "boot", "vmlinuz-"+kver), Initrd: out}
	if _, err := os.Stat(out); err == nil {
		return art, nil
	}
	start := time.Now()
	tree := out + ".root"
	os.RemoveAll(tree)
	defer os.RemoveAll(tree)
	if err := r.Extract(tree); err != nil {
		return nil, err
	}
	// Uncompressed newc: the kernel unpacks it faster than a gzip one
	// under TCG, and it is cached on the host anyway.
	tmp := out + ".tmp"
	if o, err := exec.Command("sh", "-c", `cd "$1" && find . | cpio -o -H newc --quiet > "$2"`, "sh", tree, tmp).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("cpio: %v %s", err, o)
	}
	if err := os.Rename(tmp, out); err != nil {
		return nil, err
	}
	st, _ := os.Stat(out)
	logf("built %s (%d MiB, %d modules) in %v", out, st.Size()>>20, len(order), time.Since(start).Round(time.Millisecond))
	return art, nil
}

// kernelPackage resolves linux-image-amd64 to the versioned package it
// depends on (linux-image-6.1.0-NN-amd64).
func kernelPackage() (string, error) {
	out, err := exec.Command("apt-cache", "depends", "linux-image-amd64").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("apt-cache depends linux-image-amd64: %v %s", err, out)
	}
	m := regexp.MustCompile(`Depends: (linux-image-[0-9][^\s]*-amd64)`).FindStringSubmatch(string(out))
	if m == nil {
		return "", fmt.Errorf("no linux-image-*-amd64 dependency in:\n%s", out)
	}
	return m[1], nil
}
