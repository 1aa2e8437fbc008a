// Package nfs3 is the NFS version 3 program (RFC 1813) and the MOUNT
// version 3 program, as front ends of a vfs.FS.
//
// Every procedure is the same three steps: decode its arguments whole
// (pkg/nfs3/wire; GARBAGE_ARGS if they do not decode), make one call to
// the file-operation layer, which applies every rule and does the work,
// and encode the result, mapping the layer's errors to nfsstat3 in one
// place (status.go). Nothing here touches the file system.
package nfs3

import (
	"context"
	"crypto/rand"
	"log/slog"

	"github.com/rwxnfs/rwxnfs/pkg/nfs3/wire"
	"github.com/rwxnfs/rwxnfs/pkg/rpc"
	"github.com/rwxnfs/rwxnfs/pkg/vfs"
	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// Program numbers.
const (
	Program      = wire.Program
	Version      = wire.Version
	MountProgram = wire.MountProgram
)

// MaxIO is the transfer size advertised in FSINFO: what the Linux client
// uses at most, and within the transport's record limit.
const MaxIO = wire.MaxWriteData

// Metrics receives what the NFS program counts beyond RPC calls.
type Metrics interface {
	BytesRead(n int)
	BytesWritten(n int)
	Status(proc uint32, s wire.Status)
}

// procFunc serves one procedure: it decodes the arguments from r and
// appends the results to w, returning their status, or returns
// rpc.ErrGarbageArgs having written nothing.
type procFunc func(h *Handler, ctx context.Context, r *xdr.Reader, c vfs.Caller, w *xdr.Writer) (wire.Status, error)

// Handler serves NFSv3.
type Handler struct {
	FS      vfs.FS
	Log     *slog.Logger
	Metrics Metrics

	// verifier changes on every start: a client that sees it change
	// re-sends the UNSTABLE writes it has not seen committed.
	verifier [8]byte
	procs    [wire.NumProcs]procFunc
}

// NewHandler returns an NFSv3 handler over fs.
func NewHandler(fs vfs.FS, log *slog.Logger, m Metrics) *Handler {
	if log == nil {
		log = slog.Default()
	}
	h := &Handler{FS: fs, Log: log, Metrics: m}
	rand.Read(h.verifier[:])
	h.procs = [wire.NumProcs]procFunc{
		nil, // NULL is answered in ServeRPC
		(*Handler).getattr, (*Handler).setattr, (*Handler).lookup, (*Handler).access,
		(*Handler).readlink, (*Handler).read, (*Handler).write, (*Handler).create,
		(*Handler).mkdir, (*Handler).symlink, (*Handler).mknod, (*Handler).remove,
		(*Handler).rmdir, (*Handler).rename, (*Handler).link, (*Handler).readdir,
		(*Handler).readdirplus, (*Handler).fsstat, (*Handler).fsinfo, (*Handler).pathconf,
		(*Handler).commit,
	}
	return h
}

// Program returns the registration of the NFS program.
func (h *Handler) Program() rpc.Program {
	return rpc.Program{Prog: Program, Low: Version, High: Version, Name: "nfs", Handler: h}
}

// ServeRPC implements rpc.Handler.
func (h *Handler) ServeRPC(ctx context.Context, req *rpc.Request, w *xdr.Writer) error {
	if req.Proc == wire.ProcNull {
		return nil
	}
	if req.Proc >= wire.NumProcs {
		return rpc.ErrProcUnavail
	}
	st, err := h.procs[req.Proc](h, ctx, req.Args, caller(req), w)
	if err != nil {
		return err
	}
	if st != wire.OK && h.Metrics != nil {
		h.Metrics.Status(req.Proc, st)
	}
	return nil
}

// Brief implements rpc.Brief: the procedures that read and never wait
// for a flush. Every procedure that changes anything is durable before
// its reply (a directory or file fsync), and WRITE and COMMIT flush data:
// none of those is brief.
func (h *Handler) Brief(_, _, proc uint32) bool {
	switch proc {
	case wire.ProcNull, wire.ProcGetattr, wire.ProcLookup, wire.ProcAccess,
		wire.ProcReadlink, wire.ProcRead, wire.ProcReaddir, wire.ProcReaddirplus,
		wire.ProcFsstat, wire.ProcFsinfo, wire.ProcPathconf:
		return true
	}
	return false
}

// caller is who makes req, for the file-operation layer.
func caller(req *rpc.Request) vfs.Caller {
	c := vfs.Caller{Addr: req.RemoteIP}
	if s := req.Sys; s != nil {
		c.Unix, c.UID, c.GID, c.Groups = true, s.UID, s.GID, s.GIDs
	}
	return c
}
