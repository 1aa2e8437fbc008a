package csi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rwxnfs/rwxnfs/pkg/nfsclient"
	"github.com/rwxnfs/rwxnfs/pkg/rpc"
	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// Before a mount, the node checks what the mount needs, so that each
// known way for it to fail comes back as a message that says what is
// wrong and how to fix it, instead of mount's "exit status 32" or a hang.
// In the order a mount meets them: the mount.nfs helper, the kernel's NFS
// client, rpc.statd (for locking), the server's portmapper and NFS
// service, and the export's allow-list.

// RPC programs the checks speak to.
const (
	pmapProg   = 100000
	nfsProg    = 100003
	mountProg  = 100005
	statusProg = 100024 // NSM: rpc.statd
	protoTCP   = 6
)

// checker runs the pre-mount checks of one node.
type checker struct {
	node    string        // for messages
	timeout time.Duration // per network check
	proc    string        // /proc
	// helperDirs are where mount(8) looks for mount.nfs.
	helperDirs []string
}

func newChecker(node string) *checker {
	return &checker{node: node, timeout: 3 * time.Second, proc: "/proc", helperDirs: []string{"/sbin", "/usr/sbin", "/bin", "/usr/bin"}}
}

// mountOpts is what the checks need from the mount options.
type mountOpts struct {
	port, mountPort int  // 0: from the server's portmapper
	locking         bool // NLM locking wanted (no nolock, no local_lock=all)
}

func parseMountOpts(flags []string) mountOpts {
	o := mountOpts{locking: true}
	for _, f := range flags {
		for _, opt := range strings.Split(f, ",") {
			k, v, _ := strings.Cut(strings.TrimSpace(opt), "=")
			switch k {
			case "nolock":
				o.locking = false
			case "lock":
				o.locking = true
			case "local_lock":
				if v == "all" || v == "posix" {
					o.locking = false
				}
			case "port":
				o.port, _ = strconv.Atoi(v)
			case "mountport":
				o.mountPort, _ = strconv.Atoi(v)
			}
		}
	}
	return o
}

// all runs every check for mounting share from server.
func (c *checker) all(ctx context.Context, server, share string, o mountOpts) error {
	if err := c.helper(); err != nil {
		return err
	}
	if err := c.kernel(ctx); err != nil {
		return err
	}
	if o.locking {
		if err := c.statd(ctx); err != nil {
			return err
		}
	}
	return c.export(ctx, server, share, o)
}

// helper finds mount.nfs, which mount(8) needs for type nfs.
func (c *checker) helper() error {
	for _, d := range c.helperDirs {
		if fi, err := os.Stat(filepath.Join(d, "mount.nfs")); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return nil
		}
	}
	return status.Errorf(codes.FailedPrecondition,
		"node %s cannot mount NFS: the mount.nfs helper is not installed (looked in %s); install nfs-common (Debian, Ubuntu) or nfs-utils (RHEL, Fedora, SUSE) in the csi-nfs node image or on the host, as the image's mount runs",
		c.node, strings.Join(c.helperDirs, ", "))
}

// kernel checks that the kernel has an NFS client, loading it if it can.
func (c *checker) kernel(ctx context.Context) error {
	if c.hasNFS() {
		return nil
	}
	var tried string
	if p, err := exec.LookPath("modprobe"); err == nil {
		mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		out, err := exec.CommandContext(mctx, p, "nfs").CombinedOutput()
		cancel()
		if err == nil && c.hasNFS() {
			return nil
		}
		tried = fmt.Sprintf("; 'modprobe nfs' did not help (%v: %s)", err, strings.TrimSpace(string(out)))
	}
	return status.Errorf(codes.FailedPrecondition,
		"node %s cannot mount NFS: its kernel has no NFS client (no nfs in %s/filesystems)%s; load the module on the node (modprobe nfs; on some distributions it ships in a separate package such as linux-modules-extra) or use a kernel built with CONFIG_NFS_FS and CONFIG_NFS_V3",
		c.node, c.proc, tried)
}

func (c *checker) hasNFS() bool {
	f, err := os.Open(filepath.Join(c.proc, "filesystems"))
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 0 && fields[len(fields)-1] == "nfs" {
			return true
		}
	}
	return false
}

// statd checks that rpc.statd answers through the node's rpcbind, as the
// kernel's lock manager needs it to.
func (c *checker) statd(ctx context.Context) error {
	fix := "start rpcbind and rpc.statd on the node (systemctl enable --now rpcbind rpc-statd), or, only if no workload locks files on this volume from more than one node, add the mount option nolock to the StorageClass"
	port, err := c.getport(ctx, "127.0.0.1", statusProg, 1)
	if err != nil {
		return status.Errorf(codes.FailedPrecondition, "node %s cannot lock files on NFS: rpcbind does not answer on 127.0.0.1:111 (%v); %s", c.node, err, fix)
	}
	if port == 0 {
		return status.Errorf(codes.FailedPrecondition, "node %s cannot lock files on NFS: rpc.statd is not running (not registered with rpcbind); %s", c.node, fix)
	}
	if err := c.null(ctx, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), statusProg, 1); err != nil {
		return status.Errorf(codes.FailedPrecondition, "node %s cannot lock files on NFS: rpc.statd is registered on port %d but does not answer (%v); %s", c.node, port, err, fix)
	}
	return nil
}

// export checks the server's portmapper, its NFS service, and that it
// lets this node mount share (its allow-list).
func (c *checker) export(ctx context.Context, server, share string, o mountOpts) error {
	var err error
	nfsPort, mntPort := o.port, o.mountPort
	if nfsPort == 0 || mntPort == 0 {
		if nfsPort == 0 {
			nfsPort, err = c.getport(ctx, server, nfsProg, 3)
		}
		if err == nil && mntPort == 0 {
			mntPort, err = c.getport(ctx, server, mountProg, 3)
		}
		if err != nil {
			return status.Errorf(codes.Unavailable,
				"NFS server %s does not answer on its portmapper port 111 (%v): check that nfsd runs and that node %s can reach %s on TCP 111 and 2049 (network policies, firewalls, the server address in the StorageClass)",
				server, err, c.node, server)
		}
		if nfsPort == 0 || mntPort == 0 {
			return status.Errorf(codes.Unavailable, "NFS server %s does not offer NFS v3 and MOUNT v3 over TCP through its portmapper: is it an rwxnfs nfsd?", server)
		}
	}
	nfsAddr := net.JoinHostPort(server, strconv.Itoa(nfsPort))
	if err := c.null(ctx, nfsAddr, nfsProg, 3); err != nil {
		return status.Errorf(codes.Unavailable, "NFS server %s does not answer (%v): check that nfsd runs and that node %s can reach it on TCP %d", nfsAddr, err, c.node, nfsPort)
	}
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	cl, err := nfsclient.Dial(cctx, net.JoinHostPort(server, strconv.Itoa(mntPort)))
	if err != nil {
		return status.Errorf(codes.Unavailable, "the MOUNT service of NFS server %s (port %d) does not answer: %v", server, mntPort, err)
	}
	defer cl.Close()
	cl.SetCred(0, 0)
	if _, err := cl.Mount(cctx, share); err != nil {
		var ne *nfsclient.Error
		if errors.As(err, &ne) {
			switch ne.Status {
			case 13: // MNT3ERR_ACCES
				from := "this node"
				if la, ok := cl.RPC.LocalAddr().(*net.TCPAddr); ok {
					from = "this node's address " + la.IP.String()
				}
				return status.Errorf(codes.FailedPrecondition,
					"NFS server %s refuses %s for %s: the volume's allowedClients does not include %s; add it to the StorageClass or VolumeAttributesClass parameter allowedClients (or: nfsd admin update <volume> clients=...)",
					server, share, c.node, from)
			case 2: // MNT3ERR_NOENT
				return status.Errorf(codes.NotFound, "NFS server %s has no export %s: the volume was deleted or never made", server, share)
			}
		}
		return status.Errorf(codes.Unavailable, "NFS server %s: MOUNT of %s failed: %v", server, share, err)
	}
	return nil
}

// getport asks host's portmapper (TCP 111) for prog/vers over TCP; 0
// means not registered.
func (c *checker) getport(ctx context.Context, host string, prog, vers uint32) (int, error) {
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	cl, err := rpc.Dial(cctx, net.JoinHostPort(host, "111"))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	b, err := cl.Call(cctx, pmapProg, 2, 3, func(w *xdr.Writer) {
		w.Uint32(prog)
		w.Uint32(vers)
		w.Uint32(protoTCP)
		w.Uint32(0)
	})
	if err != nil {
		return 0, err
	}
	r := xdr.NewReader(b)
	port := r.Uint32()
	return int(port), r.Err()
}

// null calls procedure 0 of prog/vers at addr.
func (c *checker) null(ctx context.Context, addr string, prog, vers uint32) error {
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	cl, err := rpc.Dial(cctx, addr)
	if err != nil {
		return err
	}
	defer cl.Close()
	_, err = cl.Call(cctx, prog, vers, 0, nil)
	return err
}
