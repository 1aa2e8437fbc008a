package nfs3

import (
	"context"

	"github.com/rwxnfs/rwxnfs/pkg/nfs3/wire"
	"github.com/rwxnfs/rwxnfs/pkg/rpc"
	"github.com/rwxnfs/rwxnfs/pkg/vfs"
	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// Every procedure but READ and READDIR(PLUS), whose replies are filled in
// place (data.go, readdir.go). Each returns its reply's status.

func (h *Handler) getattr(ctx context.Context, r *xdr.Reader, c vfs.Caller, w *xdr.Writer) (wire.Status, error) {
	var a wire.FHArgs
	if a.Decode(r) != nil {
		return 0, rpc.ErrGarbageArgs
	}
	attr, err := h.FS.Getattr(ctx, c, a.FH)
	res := wire.GetattrRes{Status: status(err), Attr: fattr(&attr)}
	res.Encode(w)
	return res.Status, nil
}

func (h *Handler) setattr(ctx context.Context, r *xdr.Reader, c vfs.Caller, w *xdr.Writer) (wire.Status, error) {
	var a wire.SetattrArgs
	if a.Decode(r) != nil {
		return 0, rpc.ErrGarbageArgs
	}
	guard := vfs.Time{Sec: int64(a.Guard.Sec), Nsec: int64(a.Guard.Nsec)}
	wcc, err := h.FS.Setattr(ctx, c, a.FH, setAttr(&a.Attr), a.Check, guard)
	res := wire.WccRes{Status: status(err), Wcc: wccData(&wcc)}
	res.Encode(w)
	return res.Status, nil
}

func (h *Handler) lookup(ctx context.Context, r *xdr.Reader, c vfs.Caller, w *xdr.Writer) (wire.Status, error) {
	var a wire.DiropArgs
	if a.Decode(r) != nil {
		return 0, rpc.ErrGarbageArgs
	}
	l, err := h.FS.Lookup(ctx, c, a.Dir, a.Name)
	res := wire.LookupRes{
		Status:  status(err),
		FH:      l.FH,
		Attr:    wire.PostOpAttr{Set: true, Attr: fattr(&l.Attr)},
		DirAttr: postOp(&vfs.AttrResult{Attr: l.Dir, HasAttr: l.HasDir}),
	}
	res.Encode(w)
	return res.Status, nil
}

func (h *Handler) access(ctx context.Context, r *xdr.Reader, c vfs.Caller, w *xdr.Writer) (wire.Status, error) {
	var a wire.AccessArgs
	if a.Decode(r) != nil {
		return 0, rpc.ErrGarbageArgs
	}
	attr, granted, err := h.FS.Access(ctx, c, a.FH, a.Access)
	res := wire.AccessRes{Status: status(err), Attr: postOp(&attr), Access: granted}
	res.Encode(w)
	return res.Status, nil
}

func (h *Handler) readlink(ctx context.Context, r *xdr.Reader, c vfs.Caller, w *xdr.Writer) (wire.Status, error) {
	var a wire.FHArgs
	if a.Decode(r) != nil {
		return 0, rpc.ErrGarbageArgs
	}
	attr, target, err := h.FS.Readlink(ctx, c, a.FH)
	res := wire.ReadlinkRes{Status: status(err), Attr: postOp(&attr), Path: target}
	res.Encode(w)
	return res.Status, nil
}

// WRITE: the layer makes the data as durable as asked before it returns;
// the reply carries the boot verifier, with which the client decides
// whether UNSTABLE data it has not seen committed must be sent again.
func (h *Handler) write(ctx context.Context, r *xdr.Reader, c vfs.Caller, w *xdr.Writer) (wire.Status, error) {
	var a wire.WriteArgs
	// A count that disagrees with the data's length is a malformed
	// call, as knfsd holds: writing either length would guess.
	if a.Decode(r) != nil || int(a.Count) != len(a.Data) {
		return 0, rpc.ErrGarbageArgs
	}
	data := a.Data
	wr, err := h.FS.Write(ctx, c, a.FH, a.Offset, data, vfs.Stability(a.Stable))
	res := wire.WriteRes{Status: status(err), Wcc: wccData(&wr.Wcc), Count: wr.Count, Committed: uint32(wr.Committed), Verf: h.verifier}
	res.Encode(w)
	if err == nil && h.Metrics != nil {
		h.Metrics.BytesWritten(len(data))
	}
	return res.Status, nil
}

func (h *Handler) commit(ctx context.Context, r *xdr.Reader, c vfs.Caller, w *xdr.Writer) (wire.Status, error) {
	var a wire.CommitArgs
	if a.Decode(r) != nil {
		return 0, rpc.ErrGarbageArgs
	}
	wcc, err := h.FS.Commit(ctx, c, a.FH)
	res := wire.CommitRes{Status: status(err), Wcc: wccData(&wcc), Verf: h.verifier}
	res.Encode(w)
	return res.Status, nil
}

// created encodes the reply of CREATE, MKDIR, SYMLINK and MKNOD.
func created(w *xdr.Writer, cr *vfs.Created, err error) (wire.Status, error) {
	res := wire.CreatedRes{
		Status: status(err),
		FH:     wire.PostOpFH{Set: cr.Found, FH: cr.FH},
		Attr:   postOp(&vfs.AttrResult{Attr: cr.Attr, HasAttr: cr.Found}),
		DirWcc: wccData(&cr.Dir),
	}
	res.Encode(w)
	return res.Status, nil
}

func (h *Handler) create(ctx context.Context, r *xdr.Reader, c vfs.Caller, w *xdr.Writer) (wire.Status, error) {
	var a wire.CreateArgs
	if a.Decode(r) != nil {
		return 0, rpc.ErrGarbageArgs
	}
	how := vfs.CreateArgs{Mode: vfs.CreateMode(a.Mode), Attr: setAttr(&a.Attr), Verf: a.Verf}
	cr, err := h.FS.Create(ctx, c, a.Where.Dir, a.Where.Name, how)
	return created(w, &cr, err)
}

func (h *Handler) mkdir(ctx context.Context, r *xdr.Reader, c vfs.Caller, w *xdr.Writer) (wire.Status, error) {
	var a wire.MkdirArgs
	if a.Decode(r) != nil {
		return 0, rpc.ErrGarbageArgs
	}
	cr, err := h.FS.Mkdir(ctx, c, a.Where.Dir, a.Where.Name, setAttr(&a.Attr))
	return created(w, &cr, err)
}

func (h *Handler) symlink(ctx context.Context, r *xdr.Reader, c vfs.Caller, w *xdr.Writer) (wire.Status, error) {
	var a wire.SymlinkArgs
	if a.Decode(r) != nil {
		return 0, rpc.ErrGarbageArgs
	}
	cr, err := h.FS.Symlink(ctx, c, a.Where.Dir, a.Where.Name, a.Target, setAttr(&a.Attr))
	return created(w, &cr, err)
}

func (h *Handler) mknod(ctx context.Context, r *xdr.Reader, c vfs.Caller, w *xdr.Writer) (wire.Status, error) {
	var a wire.MknodArgs
	if a.Decode(r) != nil {
		return 0, rpc.ErrGarbageArgs
	}
	cr, err := h.FS.Mknod(ctx, c, a.Where.Dir, a.Where.Name, vfs.FileType(a.Type), setAttr(&a.Attr), a.Spec.Major, a.Spec.Minor)
	return created(w, &cr, err)
}

func (h *Handler) remove(ctx context.Context, r *xdr.Reader, c vfs.Caller, w *xdr.Writer) (wire.Status, error) {
	return unlink(ctx, r, c, w, h.FS.Remove)
}

func (h *Handler) rmdir(ctx context.Context, r *xdr.Reader, c vfs.Caller, w *xdr.Writer) (wire.Status, error) {
	return unlink(ctx, r, c, w, h.FS.Rmdir)
}

// unlink serves REMOVE or RMDIR with the layer's Remove or Rmdir.
func unlink(ctx context.Context, r *xdr.Reader, c vfs.Caller, w *xdr.Writer, op func(context.Context, vfs.Caller, []byte, string) (vfs.Wcc, error)) (wire.Status, error) {
	var a wire.DiropArgs
	if a.Decode(r) != nil {
		return 0, rpc.ErrGarbageArgs
	}
	wcc, err := op(ctx, c, a.Dir, a.Name)
	res := wire.WccRes{Status: status(err), Wcc: wccData(&wcc)}
	res.Encode(w)
	return res.Status, nil
}

func (h *Handler) rename(ctx context.Context, r *xdr.Reader, c vfs.Caller, w *xdr.Writer) (wire.Status, error) {
	var a wire.RenameArgs
	if a.Decode(r) != nil {
		return 0, rpc.ErrGarbageArgs
	}
	rr, err := h.FS.Rename(ctx, c, a.From.Dir, a.From.Name, a.To.Dir, a.To.Name)
	res := wire.RenameRes{Status: status(err), FromWcc: wccData(&rr.From), ToWcc: wccData(&rr.To)}
	res.Encode(w)
	return res.Status, nil
}

func (h *Handler) link(ctx context.Context, r *xdr.Reader, c vfs.Caller, w *xdr.Writer) (wire.Status, error) {
	var a wire.LinkArgs
	if a.Decode(r) != nil {
		return 0, rpc.ErrGarbageArgs
	}
	lr, err := h.FS.Link(ctx, c, a.FH, a.Link.Dir, a.Link.Name)
	res := wire.LinkRes{Status: status(err), Attr: postOp(&lr.File), LinkWcc: wccData(&lr.Dir)}
	res.Encode(w)
	return res.Status, nil
}

func (h *Handler) fsstat(ctx context.Context, r *xdr.Reader, c vfs.Caller, w *xdr.Writer) (wire.Status, error) {
	var a wire.FHArgs
	if a.Decode(r) != nil {
		return 0, rpc.ErrGarbageArgs
	}
	s, err := h.FS.FSStat(ctx, c, a.FH)
	res := wire.FsstatRes{
		Status: status(err), Attr: postOp(&s.AttrResult),
		TotalBytes: s.TotalBytes, FreeBytes: s.FreeBytes, AvailBytes: s.AvailBytes,
		TotalFiles: s.TotalFiles, FreeFiles: s.FreeFiles, AvailFiles: s.AvailFiles,
		Invarsec: 0, // may change at any time
	}
	res.Encode(w)
	return res.Status, nil
}

// attrOf is the post_op_attr FSINFO and PATHCONF reply with.
func (h *Handler) attrOf(ctx context.Context, c vfs.Caller, fh []byte) (wire.PostOpAttr, wire.Status) {
	attr, err := h.FS.Getattr(ctx, c, fh)
	if err != nil {
		return wire.PostOpAttr{}, status(err)
	}
	return wire.PostOpAttr{Set: true, Attr: fattr(&attr)}, wire.OK
}

// FSINFO: transfer sizes and capabilities.
func (h *Handler) fsinfo(ctx context.Context, r *xdr.Reader, c vfs.Caller, w *xdr.Writer) (wire.Status, error) {
	var a wire.FHArgs
	if a.Decode(r) != nil {
		return 0, rpc.ErrGarbageArgs
	}
	res := wire.FsinfoRes{
		Rtmax: MaxIO, Rtpref: MaxIO, Rtmult: 4096,
		Wtmax: MaxIO, Wtpref: MaxIO, Wtmult: 4096,
		Dtpref:      64 << 10,
		MaxFileSize: 1<<63 - 1,
		TimeDelta:   wire.Time{Sec: 0, Nsec: 1},
		Properties:  wire.FSFLink | wire.FSFSymlink | wire.FSFHomogeneous | wire.FSFCanSetTime,
	}
	res.Attr, res.Status = h.attrOf(ctx, c, a.FH)
	res.Encode(w)
	return res.Status, nil
}

// PATHCONF: name limits.
func (h *Handler) pathconf(ctx context.Context, r *xdr.Reader, c vfs.Caller, w *xdr.Writer) (wire.Status, error) {
	var a wire.FHArgs
	if a.Decode(r) != nil {
		return 0, rpc.ErrGarbageArgs
	}
	res := wire.PathconfRes{
		Linkmax: 65000, // ext4's
		NameMax: vfs.MaxName,
		NoTrunc: true, ChownRestricted: true, CaseInsensitive: false, CasePreserving: true,
	}
	res.Attr, res.Status = h.attrOf(ctx, c, a.FH)
	res.Encode(w)
	return res.Status, nil
}
