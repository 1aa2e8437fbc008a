package images

import (
	"fmt"
	"io/fs"
	"path/filepath"
)

// Names of the images (as the chart's values name them) and the
// repository each is imported as.
const (
	NFSD       = "nfsd"
	Controller = "csi-nfs-controller"
	Node       = "csi-nfs-node"
)

// Repository is the name an image is imported under; containerd and
// kubelet spell "rwxnfs/nfsd" as docker.io/rwxnfs/nfsd.
func Repository(name string) string { return "docker.io/rwxnfs/" + name }

// Debian packages the node image takes its NFS client helpers from, and
// the programs it takes from them (paths inside the unpacked packages).
var (
	NodePackages = []string{"nfs-common", "rpcbind", "mount", "libtirpc-common", "netbase"}
	NodePrograms = []string{
		"/sbin/mount.nfs", "/sbin/mount.nfs4", "/sbin/umount.nfs", "/sbin/umount.nfs4",
		"/sbin/rpc.statd", "/sbin/sm-notify", "/sbin/showmount",
		"/sbin/rpcbind", "/usr/bin/rpcinfo", "/usr/sbin/rpcinfo",
		"/bin/mount", "/bin/umount",
	}
	// Files the helpers read: libtirpc's /etc/netconfig, port and
	// program names, and the accounts rpcbind and statd drop to.
	nodeEtc = []string{"/etc/netconfig", "/etc/services", "/etc/protocols", "/etc/rpc"}
)

// Users of the images: rpcbind runs as _rpc, rpc.statd as statd (Debian's
// names; the ids only need to be stable within the image).
const (
	rpcUID   = 100
	statdUID = 101
	nogroup  = 65534
)

func base(r *Rootfs, node bool) {
	passwd := "root:x:0:0:root:/root:/usr/sbin/nologin\n"
	group := "root:x:0:\n"
	if node {
		passwd += fmt.Sprintf("_rpc:x:%d:%d::/run/rpcbind:/usr/sbin/nologin\n", rpcUID, nogroup)
		passwd += fmt.Sprintf("statd:x:%d:%d::/var/lib/nfs:/usr/sbin/nologin\n", statdUID, nogroup)
	}
	passwd += "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
	group += "nogroup:x:65534:\n"
	r.Data("/etc/passwd", []byte(passwd), 0o644)
	r.Data("/etc/group", []byte(group), 0o644)
	r.Data("/etc/nsswitch.conf", []byte("passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\nrpc: files\n"), 0o644)
	r.Dir("/tmp", fs.ModeSticky|0o777, 0, 0)
	r.Dir("/run", 0o755, 0, 0)
	r.Dir("/root", 0o700, 0, 0)
}

// NFSDRootfs is the nfsd image: the static nfsd and the little an
// account lookup needs.
func NFSDRootfs(nfsd string) *Rootfs {
	r := NewRootfs()
	base(r, false)
	MergedUsr(r)
	r.File("/usr/bin/nfsd", nfsd, 0o755)
	r.Dir("/data", 0o755, 0, 0)
	return r
}

// ControllerRootfs is the CSI controller image: the static csi-nfs.
func ControllerRootfs(csi string) *Rootfs {
	r := NewRootfs()
	base(r, false)
	MergedUsr(r)
	r.File("/usr/bin/csi-nfs", csi, 0o755)
	return r
}

// NodeRootfs is the node plugin image: csi-nfs, the kernel NFS client's
// user-space helpers (mount.nfs, rpc.statd, sm-notify, rpcbind) and
// util-linux mount, with their libraries, from the Debian packages
// unpacked at debRoot.
func NodeRootfs(csi, debRoot string) (*Rootfs, error) {
	r := NewRootfs()
	base(r, true)
	MergedUsr(r)
	r.File("/usr/bin/csi-nfs", csi, 0o755)
	if err := ELF(r, debRoot, NodePrograms...); err != nil {
		return nil, err
	}
	for _, f := range nodeEtc {
		r.File(f, filepath.Join(debRoot, f), 0o644)
	}
	// statd's state: the host's directory is mounted here in the chart;
	// the image's copy serves a bare `ctr run`.
	r.Dir("/var/lib/nfs", 0o755, statdUID, nogroup)
	r.Dir("/var/lib/nfs/sm", 0o700, statdUID, nogroup)
	r.Dir("/var/lib/nfs/sm.bak", 0o700, statdUID, nogroup)
	return r, nil
}
