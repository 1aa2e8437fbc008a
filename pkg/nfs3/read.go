package nfs3

import (
	"context"

	"github.com/rwxnfs/rwxnfs/pkg/nfs3/wire"
	"github.com/rwxnfs/rwxnfs/pkg/rpc"
	"github.com/rwxnfs/rwxnfs/pkg/vfs"
	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// READ: the layer reads the data straight into the reply buffer, behind
// room left for the reply's header, which is written once the attributes
// and the count are known.
func (h *Handler) read(ctx context.Context, r *xdr.Reader, c vfs.Caller, w *xdr.Writer) (wire.Status, error) {
	var a wire.ReadArgs
	if a.Decode(r) != nil {
		return 0, rpc.ErrGarbageArgs
	}
	start := w.Len()
	w.Grow(wire.ReadOKHeaderSize)
	buf := w.Grow(int(min(a.Count, MaxIO)))
	rr, err := h.FS.Read(ctx, c, a.FH, a.Offset, buf)
	res := wire.ReadRes{Status: status(err), Attr: postOp(&rr.AttrResult)}
	if err != nil {
		w.Truncate(start)
		res.Encode(w)
		return res.Status, nil
	}
	res.Count, res.EOF, res.Data = uint32(rr.N), rr.EOF, buf[:rr.N]
	w.Truncate(start + wire.ReadOKHeaderSize + rr.N)
	w.Pad(rr.N)
	res.EncodeOKHeaderAt(w, start)
	if h.Metrics != nil {
		h.Metrics.BytesRead(rr.N)
	}
	return wire.OK, nil
}
