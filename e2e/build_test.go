package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// Host packages the harness runs (qemu, the initramfs tools) or copies
// into the node image (busybox, rpcbind, the libraries nfs-common's
// binaries link against). nfs-common itself is only downloaded and
// unpacked: installing it would start statd on the host.
var hostPackages = []string{
	"qemu-system-x86", "busybox-static", "cpio", "kmod", "rpcbind", "iproute2", "util-linux", "netbase",
	"libtirpc-common", "libtirpc3", "libevent-core-2.1-7", "libnfsidmap1", "libkeyutils1", "libwrap0",
	"libcap2", "libdevmapper1.02.1", "libgssapi-krb5-2", "libkrb5-3", "libmount1",
}

// Modules the node kernel needs, loaded in modprobe's dependency order.
var nodeModules = []string{"virtio_pci", "virtio_net", "nfsv3"}

// Binaries taken from the unpacked nfs-common (relative to its root)
// and from the host, each with its shared libraries. util-linux mount and
// umount (in /sbin, ahead of busybox's) make "mount -t nfs" run
// mount.nfs, as on a real node.
var nfsCommonBins = []string{"sbin/mount.nfs", "sbin/rpc.statd", "sbin/sm-notify", "sbin/showmount"}
var hostBins = []string{"/sbin/rpcbind", "/usr/sbin/rpcinfo", "/bin/mount", "/bin/umount"}

// ExtraNodeBinaries is the hook for the future csi-nfs driver (node mode)
// and its CSI client: RWXNFS_E2E_NODE_BINS="/path/csi-nfs:/path/csc"
// copies each (static) binary to /usr/bin on every node and into the
// initramfs cache key. Nothing uses it yet.
func extraNodeBinaries() []string {
	v := os.Getenv("RWXNFS_E2E_NODE_BINS")
	if v == "" {
		return nil
	}
	return strings.Split(v, ":")
}

// nodeMemory is a node's memory in MiB: 256, or RWXNFS_E2E_NODE_MEM for
// images that carry big extra binaries (the initramfs is unpacked into
// memory: the CSI binaries need 512).
func nodeMemory() string { return envOr("RWXNFS_E2E_NODE_MEM", "256") }

// artifacts are what a test bed boots and runs.
type artifacts struct {
	kernel, initrd string // node kernel and initramfs
	nfsd           string // our server, built from this tree
	kver           string
	// For images beyond the client node's (serverImage): the cache
	// directory, the unpacked kernel and nfs-common, and e2enode.
	dir, kroot, nroot, node string
}

var (
	buildOnce sync.Once
	built     *artifacts
	buildErr  error
)

// buildDir is e2e/.build (gitignored): downloads, the unpacked kernel,
// initramfs images and logs, keyed by the versions they came from.
func buildDir() string {
	d, err := filepath.Abs(".build")
	if err != nil {
		panic(err)
	}
	return d
}

func provision(t *testing.T) *artifacts {
	t.Helper()
	buildOnce.Do(func() {
		start := time.Now()
		built, buildErr = doProvision()
		logf("provision: %v (err=%v)", time.Since(start).Round(time.Millisecond), buildErr)
	})
	if buildErr != nil {
		t.Fatalf("provisioning the test bed: %v", buildErr)
	}
	return built
}

func run(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

func doProvision() (*artifacts, error) {
	if err := ensurePackages(); err != nil {
		return nil, err
	}
	kpkg, err := kernelPackage()
	if err != nil {
		// A fresh machine may have every package but no package lists.
		if _, uerr := run("apt-get", "-o", "DPkg::Lock::Timeout=600", "update", "-qq"); uerr != nil {
			return nil, uerr
		}
		if kpkg, err = kernelPackage(); err != nil {
			return nil, err
		}
	}
	kver := strings.TrimPrefix(kpkg, "linux-image-")
	kv, err := debVersion(kpkg)
	if err != nil {
		return nil, err
	}
	nv, err := debVersion("nfs-common")
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(buildDir(), sanitize(kpkg+"_"+kv+"+nfs-common_"+nv))
	kroot, nroot := filepath.Join(dir, "kroot"), filepath.Join(dir, "nfscommon")
	if err := unpackOnce(dir, "kroot", kpkg, kroot, func() error {
		_, err := run("depmod", "-b", kroot, kver)
		return err
	}); err != nil {
		return nil, err
	}
	if err := unpackOnce(dir, "nfscommon", "nfs-common", nroot, nil); err != nil {
		return nil, err
	}
	bin := filepath.Join(buildDir(), "bin")
	nfsd, node := filepath.Join(bin, "nfsd"), filepath.Join(bin, "e2enode")
	if out, err := run("go", "build", "-o", nfsd, "github.com/rwxnfs/rwxnfs/cmd/nfsd"); err != nil {
		return nil, fmt.Errorf("building nfsd: %v %s", err, out)
	}
	build := exec.Command("go", "build", "-trimpath", "-o", node, "github.com/rwxnfs/rwxnfs/e2e/cmd/e2enode")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building e2enode: %v %s", err, out)
	}
	initrd, err := buildInitramfs(dir, kroot, nroot, kver, image{modules: nodeModules, extra: append([]string{node}, extraNodeBinaries()...)})
	if err != nil {
		return nil, err
	}
	return &artifacts{kernel: filepath.Join(kroot, "boot", "vmlinuz-"+kver), initrd: initrd, nfsd: nfsd, kver: kver,
		dir: dir, kroot: kroot, nroot: nroot, node: node}, nil
}

func sanitize(s string) string {
	return regexp.MustCompile(`[^A-Za-z0-9._+-]`).ReplaceAllString(s, "_")
}

// ensurePackages installs what is missing; apt-get update runs once, and
// only then. Other jobs on the machine may hold the dpkg lock: wait.
func ensurePackages() error {
	var missing []string
	for _, p := range hostPackages {
		if out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", p).Output(); err != nil || !strings.Contains(string(out), "install ok installed") {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	logf("apt-get install %v", missing)
	if _, err := run("apt-get", "-o", "DPkg::Lock::Timeout=600", "update", "-qq"); err != nil {
		return err
	}
	args := append([]string{"-o", "DPkg::Lock::Timeout=600", "install", "-y", "-qq", "--no-install-recommends"}, missing...)
	cmd := exec.Command("apt-get", args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get install: %v\n%s", err, out)
	}
	return nil
}

// kernelPackage resolves linux-image-amd64 to the versioned package it
// depends on (linux-image-6.1.0-NN-amd64).
func kernelPackage() (string, error) {
	out, err := run("apt-cache", "depends", "linux-image-amd64")
	if err != nil {
		return "", err
	}
	m := regexp.MustCompile(`Depends: (linux-image-[0-9][^\s]*-amd64)`).FindStringSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("no linux-image-*-amd64 dependency in:\n%s", out)
	}
	return m[1], nil
}

func debVersion(pkg string) (string, error) {
	out, err := run("apt-cache", "show", "--no-all-versions", pkg)
	if err != nil {
		return "", err
	}
	m := regexp.MustCompile(`(?m)^Version: (\S+)`).FindStringSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("no Version for %s", pkg)
	}
	return m[1], nil
}

// unpackOnce downloads pkg's .deb and unpacks it into dest, then runs
// after; a stamp file marks a complete unpack so a crash midway redoes it.
func unpackOnce(dir, name, pkg, dest string, after func() error) error {
	stamp := filepath.Join(dir, "."+name+".done")
	if _, err := os.Stat(stamp); err == nil {
		return nil
	}
	debs := filepath.Join(buildDir(), "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return err
	}
	os.RemoveAll(dest)
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return err
	}
	cmd := exec.Command("apt-get", "download", pkg)
	cmd.Dir = debs
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get download %s: %v\n%s", pkg, err, out)
	}
	files, _ := filepath.Glob(filepath.Join(debs, pkg+"_*.deb"))
	if len(files) == 0 {
		return fmt.Errorf("apt-get download %s left no .deb in %s", pkg, debs)
	}
	sort.Strings(files)
	if _, err := run("dpkg-deb", "-x", files[len(files)-1], dest); err != nil {
		return err
	}
	if after != nil {
		if err := after(); err != nil {
			return err
		}
	}
	return os.WriteFile(stamp, nil, 0o644)
}

// image is what goes into an initramfs besides busybox, mount.nfs, statd,
// rpcbind and init: modules (loaded with their dependencies, in order),
// dynamic host binaries (to /sbin, with their libraries), static ones (to
// /usr/bin) and host files copied as they are.
// sysroot, if set, is an unpacked package tree copied into the image as
// it is; the libraries the binaries find there (LD_LIBRARY_PATH for ldd)
// come with it.
type image struct {
	modules, hostBins, extra, files []string
	sysroot                         string
}

// buildInitramfs assembles a node image: busybox, the NFS client
// modules, mount.nfs/statd/rpcbind with their libraries, our init and
// what img adds. The image is cached by a hash of its inputs.
func buildInitramfs(dir, kroot, nroot, kver string, img image) (string, error) {
	extra := img.extra
	h := sha256.New()
	fmt.Fprintln(h, img.modules, nfsCommonBins, hostBins, img.hostBins, img.files, img.sysroot)
	h.Write([]byte(nodeInit))
	for _, b := range extra {
		data, err := os.ReadFile(b)
		if err != nil {
			return "", fmt.Errorf("node binary: %v", err)
		}
		h.Write(data)
	}
	out := filepath.Join(dir, "initrd-"+hex.EncodeToString(h.Sum(nil))[:12]+".img")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	start := time.Now()
	r := out + ".root"
	os.RemoveAll(r)
	defer os.RemoveAll(r)
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "run", "tmp", "mnt",
		"var/lib/nfs/sm", "var/lib/nfs/sm.bak", "lib64", "root", "home/user"} {
		if err := os.MkdirAll(filepath.Join(r, d), 0o755); err != nil {
			return "", err
		}
	}
	os.Symlink("../run", filepath.Join(r, "var/run"))
	copyFile := func(src, dst string, mode os.FileMode) error {
		data, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, data, mode)
	}
	if err := copyFile("/bin/busybox", filepath.Join(r, "bin/busybox"), 0o755); err != nil {
		return "", err
	}
	// Modules, in load order.
	deps, err := run("modprobe", append([]string{"-d", kroot, "-S", kver, "--show-depends", "-a"}, img.modules...)...)
	if err != nil {
		return "", err
	}
	var order []string
	seen := map[string]bool{}
	modBase := filepath.Join(kroot, "lib/modules", kver) + "/"
	for _, line := range strings.Split(deps, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "insmod" || seen[f[1]] {
			continue
		}
		seen[f[1]] = true
		rel := strings.TrimPrefix(f[1], modBase)
		if err := copyFile(f[1], filepath.Join(r, "lib/modules", kver, rel), 0o644); err != nil {
			return "", err
		}
		order = append(order, rel)
	}
	if len(order) < 5 {
		return "", fmt.Errorf("modprobe found only %v", order)
	}
	if err := os.WriteFile(filepath.Join(r, "etc/modules.list"), []byte(strings.Join(order, "\n")+"\n"), 0o644); err != nil {
		return "", err
	}
	// Dynamic binaries and their libraries, found with ldd.
	bins := map[string]string{}
	for _, b := range nfsCommonBins {
		bins[filepath.Join(nroot, b)] = filepath.Join(r, b)
	}
	for _, b := range append(append([]string(nil), hostBins...), img.hostBins...) {
		bins[b] = filepath.Join(r, "sbin", filepath.Base(b))
	}
	if img.sysroot != "" {
		if _, err := run("cp", "-a", img.sysroot+"/.", r+"/"); err != nil {
			return "", err
		}
	}
	libs := map[string]bool{"/lib64/ld-linux-x86-64.so.2": true}
	for src, dst := range bins {
		if err := copyFile(src, dst, 0o755); err != nil {
			return "", err
		}
		ldd := exec.Command("ldd", src)
		if img.sysroot != "" {
			ldd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+img.sysroot+"/usr/lib/ganesha:"+img.sysroot+"/usr/lib/x86_64-linux-gnu")
		}
		outb, err := ldd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("ldd %s: %v\n%s", src, err, outb)
		}
		out := string(outb)
		if strings.Contains(out, "not found") {
			return "", fmt.Errorf("%s needs a library the host lacks:\n%s", src, out)
		}
		for _, l := range regexp.MustCompile(`=> (/\S+)`).FindAllStringSubmatch(out, -1) {
			if img.sysroot == "" || !strings.HasPrefix(l[1], img.sysroot+"/") {
				libs[l[1]] = true // (the sysroot's own came with it)
			}
		}
	}
	for l := range libs {
		if err := copyFile(l, filepath.Join(r, l), 0o755); err != nil {
			return "", err
		}
	}
	os.Symlink("mount.nfs", filepath.Join(r, "sbin/umount.nfs"))
	for _, b := range extra {
		if err := copyFile(b, filepath.Join(r, "usr/bin", filepath.Base(b)), 0o755); err != nil {
			return "", err
		}
	}
	for _, f := range append([]string{"/etc/netconfig", "/etc/services", "/etc/protocols", "/etc/rpc"}, img.files...) {
		if err := copyFile(f, filepath.Join(r, f), 0o644); err != nil {
			return "", err
		}
	}
	files := map[string]string{
		"init":              nodeInit,
		"etc/passwd":        "root:x:0:0:root:/root:/bin/sh\n_rpc:x:100:65534::/run/rpcbind:/bin/false\nstatd:x:101:65534::/var/lib/nfs:/bin/false\nuser:x:1000:1000::/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
		"etc/group":         "root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n",
		"etc/nsswitch.conf": "passwd: files\ngroup: files\nhosts: files\nservices: files\nprotocols: files\nrpc: files\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(r, name), []byte(body), 0o755); err != nil {
			return "", err
		}
	}
	tmp := out + ".tmp"
	if _, err := run("sh", "-c", `cd "$1" && find . | cpio -o -H newc --quiet | gzip -1 > "$2"`, "sh", r, tmp); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", err
	}
	st, _ := os.Stat(out)
	logf("built %s (%d KiB, %d modules) in %v", out, st.Size()>>10, len(order), time.Since(start).Round(time.Millisecond))
	return out, nil
}

// nodeInit is PID 1 on a node. It brings up the NFS client side (modules,
// network, rpcbind, rpc.statd) and then serves the host on the serial
// console: each input line is "<id> <base64 shell script>"; the reply is
// the script's output between "@@BEGIN <id>" and "@@END <id> <rc>".
// Kernel messages are kept off the console (dmesg -n 1) so they cannot
// interleave with replies; "dmesg" in a script still shows them.
const nodeInit = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/sbin:/usr/sbin:/bin:/usr/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mount -t tmpfs run /run; mount -t tmpfs tmp /tmp; mkdir -p /run/rpcbind /dev/pts; mount -t devpts devpts /dev/pts
dmesg -n 1
for m in $(cat /etc/modules.list); do insmod /lib/modules/$(uname -r)/$m || echo "E2E insmod $m failed"; done
for x in $(cat /proc/cmdline); do case $x in
  e2e.ip=*) IP=${x#*=};; e2e.host=*) HOST=${x#*=};; e2e.srv=*) SRV=${x#*=};; esac; done
hostname $HOST
printf '127.0.0.1 localhost\n%s %s\n%s nfsserver\n' $IP $HOST $SRV > /etc/hosts
ip link set lo up; ip addr add $IP/24 dev eth0; ip link set eth0 up
rpcbind -w || echo "E2E rpcbind failed"
rpc.statd --no-notify || echo "E2E rpc.statd failed"
i=0; until ping -c1 -W1 $SRV >/dev/null 2>&1; do i=$((i+1)); [ $i -gt 60 ] && break; done
stty -echo
echo "@@READY $HOST uptime=$(cut -d' ' -f1 /proc/uptime)"
while read -r id b64; do
  [ -z "$b64" ] && continue
  echo "$b64" | base64 -d > /tmp/cmd.$id.sh
  sh /tmp/cmd.$id.sh > /tmp/out.$id 2>&1 < /dev/null
  rc=$?
  echo "@@BEGIN $id"; cat /tmp/out.$id; echo "@@END $id $rc"
done
echo "@@EXIT"
poweroff -f
`
