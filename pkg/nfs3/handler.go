// Package nfs3 serves the NFS version 3 program (RFC 1813) and the MOUNT
// version 3 program over the volumes of an exports.Table.
//
// Every procedure decodes its arguments completely before touching the file
// system, resolves handles through the table (which rejects forged and
// stale ones), checks the client against the volume's allow-list, maps the
// caller's AUTH_SYS identity through the volume's squash options, and runs
// changes as that identity (fscred.Do) so the kernel enforces permissions
// and sets ownership.
package nfs3

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"strconv"
	"strings"

	nfs "github.com/willscott/go-nfs"
	"golang.org/x/sys/unix"

	"github.com/rwxnfs/rwxnfs/pkg/exports"
	"github.com/rwxnfs/rwxnfs/pkg/fscred"
	"github.com/rwxnfs/rwxnfs/pkg/rpc"
	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// Program numbers.
const (
	Program      = 100003
	Version      = 3
	MountProgram = 100005
)

// Transfer sizes advertised in FSINFO. 1 MiB is what the Linux client
// uses at most and keeps a request inside rpcserver.DefaultLimits.
const (
	MaxIO       = 1 << 20
	maxName     = 255
	maxPath     = 4096
	dirPrefSize = 64 << 10
)

// Status is an nfsstat3. The names come from go-nfs.
type Status = nfs.NFSStatus

// Statuses used here.
const (
	OK          = nfs.NFSStatusOk
	errPerm     = nfs.NFSStatusPerm
	errNoEnt    = nfs.NFSStatusNoEnt
	errIO       = nfs.NFSStatusIO
	errAccess   = nfs.NFSStatusAccess
	errExist    = nfs.NFSStatusExist
	errXDev     = nfs.NFSStatusXDev
	errNotDir   = nfs.NFSStatusNotDir
	errIsDir    = nfs.NFSStatusIsDir
	errInval    = nfs.NFSStatusInval
	errFBig     = nfs.NFSStatusFBig
	errNoSpc    = nfs.NFSStatusNoSPC
	errROFS     = nfs.NFSStatusROFS
	errMLink    = nfs.NFSStatusMlink
	errNameLong = nfs.NFSStatusNameTooLong
	errNotEmpty = nfs.NFSStatusNotEmpty
	errDQuot    = nfs.NFSStatusDQuot
	errStale    = nfs.NFSStatusStale
	errBadHdl   = nfs.NFSStatusBadHandle
	errNotSync  = nfs.NFSStatusNotSync
	errNotSupp  = nfs.NFSStatusNotSupp
	errTooSmall = nfs.NFSStatusTooSmall
	errFault    = nfs.NFSStatusServerFault
	errBadType  = nfs.NFSStatusBadType
)

var errBadTime = errors.New("nfs3: bad time in sattr3")

// Metrics receives what the NFS program counts beyond RPC calls.
type Metrics interface {
	BytesRead(n int)
	BytesWritten(n int)
	Status(proc uint32, s Status)
}

// Handler serves NFSv3.
type Handler struct {
	Table   *exports.Table
	Log     *slog.Logger
	Metrics Metrics

	// verifier changes on every start: a client that sees it change
	// re-sends the UNSTABLE writes it has not seen committed.
	verifier [8]byte
	procs    [22]func(*call) Status
}

// NewHandler returns an NFSv3 handler over t.
func NewHandler(t *exports.Table, log *slog.Logger, m Metrics) *Handler {
	if log == nil {
		log = slog.Default()
	}
	h := &Handler{Table: t, Log: log, Metrics: m}
	rand.Read(h.verifier[:])
	h.procs = [22]func(*call) Status{
		nil, // NULL is answered in ServeRPC
		(*call).getattr, (*call).setattr, (*call).lookup, (*call).access,
		(*call).readlink, (*call).read, (*call).write, (*call).create,
		(*call).mkdir, (*call).symlink, (*call).mknod, (*call).remove,
		(*call).rmdir, (*call).rename, (*call).link, (*call).readdir,
		(*call).readdirplus, (*call).fsstat, (*call).fsinfo, (*call).pathconf,
		(*call).commit,
	}
	return h
}

// Program returns the registration of the NFS program.
func (h *Handler) Program() rpc.Program {
	return rpc.Program{Prog: Program, Low: Version, High: Version, Name: "nfs", Handler: h}
}

// call is one NFS call in progress.
type call struct {
	h   *Handler
	ctx context.Context
	req *rpc.Request
	r   *xdr.Reader
	w   *xdr.Writer
	// nodes to release when the call ends
	held []*exports.Node
	// errGarbage is set when the arguments did not decode.
	garbage bool
}

// ServeRPC implements rpc.Handler.
func (h *Handler) ServeRPC(ctx context.Context, req *rpc.Request, w *xdr.Writer) error {
	if req.Proc == 0 {
		return nil
	}
	if int(req.Proc) >= len(h.procs) {
		return rpc.ErrProcUnavail
	}
	c := &call{h: h, ctx: ctx, req: req, r: req.Args, w: w}
	defer c.release()
	st := h.procs[req.Proc](c)
	if c.garbage {
		return rpc.ErrGarbageArgs
	}
	if st != OK && h.Metrics != nil {
		h.Metrics.Status(req.Proc, st)
	}
	return nil
}

func (c *call) release() {
	for _, n := range c.held {
		c.h.Table.Release(n)
	}
}

// args reports whether decoding succeeded; if not the call answers
// GARBAGE_ARGS.
func (c *call) args() bool {
	if c.r.Err() != nil {
		c.garbage = true
		return false
	}
	return true
}

func readHandle(r *xdr.Reader) []byte { return r.Opaque(exports.MaxHandle) }

// node resolves a handle for this call: it must be well-formed, minted by
// us, not stale, and the client must be on the volume's allow-list.
func (c *call) node(fh []byte) (*exports.Node, Status) {
	n, err := c.h.Table.Resolve(fh)
	if err != nil {
		return nil, c.status(err)
	}
	c.held = append(c.held, n)
	if !n.Vol.Options.AllowsClient(c.req.RemoteIP) {
		c.h.Log.Warn("client not on the volume's allow-list", "volume", n.Vol.ID, "client", c.req.RemoteIP, "proc", nfs.NFSProcedure(c.req.Proc).String())
		return nil, errAccess
	}
	return n, OK
}

// stat returns a node's attributes, dropping it from the cache if its file
// is gone.
func (c *call) stat(n *exports.Node, st *unix.Stat_t) Status {
	if err := n.Stat(st); err != nil {
		if errors.Is(err, exports.ErrStale) {
			c.h.Table.Forget(n.Handle)
		}
		return c.status(err)
	}
	return OK
}

// statOrNil returns attributes for post_op_attr, or nil.
func statOrNil(n *exports.Node) *unix.Stat_t {
	var st unix.Stat_t
	if n == nil || n.Stat(&st) != nil {
		return nil
	}
	return &st
}

// cred is the identity the call runs as on volume v.
func (c *call) cred(v *exports.Volume) fscred.Cred { return v.Options.Cred(c.req.Sys) }

// checkName validates a name to create or remove in a directory. Names
// are single components: the server never resolves a path for a client.
func checkName(name string) Status {
	switch {
	case name == "" || strings.ContainsAny(name, "/\x00"):
		return errAccess
	case len(name) > maxName:
		return errNameLong
	case name == "." || name == "..":
		return errExist
	}
	return OK
}

// status maps an error from the file system or the table to nfsstat3.
func (c *call) status(err error) Status {
	if err == nil {
		return OK
	}
	switch {
	case errors.Is(err, exports.ErrStale):
		return errStale
	case errors.Is(err, exports.ErrBadHandle):
		return errBadHdl
	}
	var errno unix.Errno
	if !errors.As(err, &errno) {
		c.h.Log.Error("unexpected error", "proc", nfs.NFSProcedure(c.req.Proc).String(), "err", err)
		return errFault
	}
	switch errno {
	case unix.EPERM:
		return errPerm
	case unix.ENOENT:
		return errNoEnt
	case unix.EACCES:
		return errAccess
	case unix.EEXIST:
		return errExist
	case unix.EXDEV:
		return errXDev
	case unix.ENOTDIR:
		return errNotDir
	case unix.EISDIR:
		return errIsDir
	case unix.EINVAL, unix.ELOOP:
		return errInval
	case unix.EFBIG:
		return errFBig
	case unix.ENOSPC:
		return errNoSpc
	case unix.EROFS:
		return errROFS
	case unix.EMLINK:
		return errMLink
	case unix.ENAMETOOLONG:
		return errNameLong
	case unix.ENOTEMPTY:
		return errNotEmpty
	case unix.EDQUOT:
		return errDQuot
	case unix.ESTALE:
		return errStale
	case unix.EOPNOTSUPP:
		return errNotSupp
	case unix.EIO:
		return errIO
	}
	c.h.Log.Warn("unmapped errno", "proc", nfs.NFSProcedure(c.req.Proc).String(), "err", err)
	return errIO
}

// Access bits (ACCESS3_*).
const (
	accessRead    = 0x01
	accessLookup  = 0x02
	accessModify  = 0x04
	accessExtend  = 0x08
	accessDelete  = 0x10
	accessExecute = 0x20
)

// permits computes which access bits the mode bits of st give cred.
// Root may read and write anything and execute what has an execute bit.
func permits(st *unix.Stat_t, cred fscred.Cred, readOnly bool) uint32 {
	var r, w, x bool
	mode := st.Mode
	switch {
	case cred.UID == 0:
		r, w = true, true
		x = isDir(st) || mode&0o111 != 0
	case cred.UID == st.Uid:
		r, w, x = mode&0o400 != 0, mode&0o200 != 0, mode&0o100 != 0
	case cred.InGroup(st.Gid):
		r, w, x = mode&0o040 != 0, mode&0o020 != 0, mode&0o010 != 0
	default:
		r, w, x = mode&0o004 != 0, mode&0o002 != 0, mode&0o001 != 0
	}
	var bits uint32
	if r {
		bits |= accessRead
	}
	if isDir(st) {
		if x {
			bits |= accessLookup
		}
		if w && x {
			bits |= accessModify | accessExtend | accessDelete
		}
	} else {
		if w {
			bits |= accessModify | accessExtend
		}
		if x {
			bits |= accessExecute
		}
	}
	if readOnly {
		bits &^= accessModify | accessExtend | accessDelete
	}
	return bits
}

// mayRead and mayWrite check data access for READ, WRITE and truncation.
// The owner may always read and write their file whatever its mode, as
// with knfsd: a client that created a file read-only still writes the
// data it opened it for. Read also allows execute, because clients
// execute programs by reading them.
func mayRead(st *unix.Stat_t, cred fscred.Cred) bool {
	return cred.UID == 0 || cred.UID == st.Uid || permits(st, cred, false)&(accessRead|accessExecute) != 0
}

func mayWrite(st *unix.Stat_t, cred fscred.Cred) bool {
	return cred.UID == 0 || cred.UID == st.Uid || permits(st, cred, false)&accessModify != 0
}

// syncDir makes a directory change durable before it is acknowledged, as
// RFC 1813 requires of every namespace operation.
func syncDir(n *exports.Node) error {
	fd, err := unix.Openat(n.FD(), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Fsync(fd)
}

var statusNames = map[Status]string{
	OK: "NFS3_OK", errPerm: "NFS3ERR_PERM", errNoEnt: "NFS3ERR_NOENT", errIO: "NFS3ERR_IO",
	errAccess: "NFS3ERR_ACCES", errExist: "NFS3ERR_EXIST", errXDev: "NFS3ERR_XDEV",
	errNotDir: "NFS3ERR_NOTDIR", errIsDir: "NFS3ERR_ISDIR", errInval: "NFS3ERR_INVAL",
	errFBig: "NFS3ERR_FBIG", errNoSpc: "NFS3ERR_NOSPC", errROFS: "NFS3ERR_ROFS",
	errMLink: "NFS3ERR_MLINK", errNameLong: "NFS3ERR_NAMETOOLONG", errNotEmpty: "NFS3ERR_NOTEMPTY",
	errDQuot: "NFS3ERR_DQUOT", errStale: "NFS3ERR_STALE", errBadHdl: "NFS3ERR_BADHANDLE",
	errNotSync: "NFS3ERR_NOT_SYNC", errBadCookie: "NFS3ERR_BAD_COOKIE", errNotSupp: "NFS3ERR_NOTSUPP",
	errTooSmall: "NFS3ERR_TOOSMALL", errFault: "NFS3ERR_SERVERFAULT", errBadType: "NFS3ERR_BADTYPE",
}

// StatusName is the RFC 1813 name of a status, for logs and metric labels.
func StatusName(s Status) string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return "NFS3ERR_" + strconv.Itoa(int(s))
}
