package rpcserver

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/rwxnfs/rwxnfs/pkg/rpc"
	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// dispatch decodes the call in rec, runs it and appends its reply to w.
// It reports false when no reply is due (no whole call header).
func (s *Server) dispatch(ctx context.Context, rec []byte, w *xdr.Writer, remote, local net.Addr, network string) bool {
	start := time.Now()
	r := xdr.NewReader(rec)
	h, err := rpc.ParseCall(r)
	switch {
	case errors.Is(err, rpc.ErrBadRPCVersion):
		rpc.WriteRPCMismatch(w, h.XID)
		return true
	case errors.Is(err, rpc.ErrBadAuth):
		rpc.WriteCallError(w, h.XID, rpc.ErrAuthBadCred)
		s.observe(h, start, rpc.ErrAuthBadCred)
		return true
	case err != nil:
		// Without a whole header there is no one to answer.
		s.Log.Debug("dropping malformed call", "remote", remote, "err", err)
		s.count(func(st *Stats) { st.DroppedCalls++ })
		return false
	}
	req := &rpc.Request{CallHeader: h, Args: r, Remote: remote, Local: local, Network: network}
	if ap, ok := rpc.AddrPort(remote); ok {
		req.RemoteIP = ap.Addr().Unmap()
	}
	mark := w.Len()
	var callErr error
	switch h.Cred.Flavor {
	case rpc.AuthNone:
	case rpc.AuthSys:
		cred, err := rpc.ParseAuthSys(h.Cred.Body)
		if err != nil {
			callErr = rpc.ErrAuthBadCred
		} else {
			req.Sys = &cred
		}
	default:
		// A flavor we do not know (RPCSEC_GSS, AUTH_DH, ...): the
		// credential cannot be checked at all, as knfsd answers.
		callErr = rpc.ErrAuthBadCred
	}
	if callErr == nil {
		rpc.WriteAccepted(w, h.XID, rpc.Success)
		callErr = s.call(ctx, req, w)
	}
	if callErr != nil {
		w.Truncate(mark)
		var ce *rpc.CallError
		if !errors.As(callErr, &ce) {
			s.Log.Error("call failed", "prog", h.Prog, "vers", h.Vers, "proc", h.Proc, "remote", remote, "err", callErr)
			ce = rpc.ErrSystem
		}
		rpc.WriteCallError(w, h.XID, ce)
	}
	s.observe(h, start, callErr)
	return true
}

// call runs a handler, turning a panic into SYSTEM_ERR: one bad request
// must never take the server down.
func (s *Server) call(ctx context.Context, req *rpc.Request, w *xdr.Writer) (err error) {
	defer func() {
		if v := recover(); v != nil {
			s.Log.Error("handler panic", "prog", req.Prog, "vers", req.Vers, "proc", req.Proc, "remote", req.Remote, "panic", v)
			err = rpc.ErrSystem
		}
	}()
	return s.Handler.ServeRPC(ctx, req, w)
}

func (s *Server) observe(h rpc.CallHeader, start time.Time, err error) {
	if s.Observer != nil {
		s.Observer.CallDone(h.Prog, h.Vers, h.Proc, time.Since(start), err)
	}
}

var writerPool = sync.Pool{New: func() any { return xdr.NewWriter(8 << 10) }}

func getWriter() *xdr.Writer {
	w := writerPool.Get().(*xdr.Writer)
	w.Reset()
	return w
}

func putWriter(w *xdr.Writer) {
	// Keep big READ buffers, but not absurd ones.
	if cap(w.Bytes()) <= 2<<20 {
		writerPool.Put(w)
	}
}
