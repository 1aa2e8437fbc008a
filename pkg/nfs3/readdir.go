package nfs3

import (
	"context"

	"github.com/rwxnfs/rwxnfs/pkg/nfs3/wire"
	"github.com/rwxnfs/rwxnfs/pkg/rpc"
	"github.com/rwxnfs/rwxnfs/pkg/vfs"
	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// READDIR and READDIRPLUS. Entries are encoded as the layer lists them,
// behind room left for the reply's head (the directory's attributes come
// with the listing's result), until the next one would pass the client's
// limit; it is listed again by the next call. The cookie verifier is
// always zero: cookies are stable directory offsets (see volfs).

func (h *Handler) readdir(ctx context.Context, r *xdr.Reader, c vfs.Caller, w *xdr.Writer) (wire.Status, error) {
	return h.listDir(ctx, r, c, w, false)
}

func (h *Handler) readdirplus(ctx context.Context, r *xdr.Reader, c vfs.Caller, w *xdr.Writer) (wire.Status, error) {
	return h.listDir(ctx, r, c, w, true)
}

func (h *Handler) listDir(ctx context.Context, r *xdr.Reader, c vfs.Caller, w *xdr.Writer, plus bool) (wire.Status, error) {
	a := wire.ReaddirArgs{Plus: plus}
	if a.Decode(r) != nil {
		return 0, rpc.ErrGarbageArgs
	}
	// The reply's limit is count (READDIR) or maxcount (READDIRPLUS);
	// READDIRPLUS's dircount is a hint, as in knfsd.
	limit := int(min(a.Count, MaxIO))
	start := w.Len()
	w.Grow(wire.ReaddirOKHeadSize)
	used, entries, tooSmall := wire.ReaddirOKSize, 0, false
	var e wire.Entry
	args := vfs.ReadDirArgs{Cookie: a.Cookie, Plus: plus, SizeHint: limit}
	lr, err := h.FS.ReadDir(ctx, c, a.Dir, args, func(de *vfs.DirEntry) bool {
		e.FileID, e.Name, e.Cookie = de.FileID, de.Name, de.Cookie
		if plus {
			if e.Attr.Set = de.HasAttr; de.HasAttr {
				setFattr(&e.Attr.Attr, &de.Attr)
			}
			e.FH.Set, e.FH.FH = de.FH != nil, de.FH
		}
		// Encoded, then measured: an entry that does not fit is taken
		// back, and listed first by the next call.
		before := w.Len()
		e.Encode(w, plus)
		if size := w.Len() - before; used+size <= limit {
			used += size
			entries++
			return true
		}
		w.Truncate(before)
		tooSmall = entries == 0
		return false
	})
	res := wire.ReaddirRes{Plus: plus, Status: status(err), DirAttr: postOp(&lr.Dir), EOF: lr.EOF}
	if err == nil && tooSmall {
		res.Status = wire.ErrTooSmall // not even one entry fits
	}
	if res.Status != wire.OK {
		w.Truncate(start)
		res.EncodeHead(w)
		return res.Status, nil
	}
	res.EncodeTail(w)
	res.EncodeOKHeadAt(w, start)
	return wire.OK, nil
}
