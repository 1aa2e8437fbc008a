package rpc

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// Request is one decoded call handed to a Handler. The transport fills
// it; programs read their arguments from Args.
type Request struct {
	CallHeader
	// Args is positioned at the procedure's arguments.
	Args *xdr.Reader
	// Sys is the AUTH_SYS credential, or nil for AUTH_NONE.
	Sys *AuthSysCred
	// Remote is the caller's address; RemoteIP its IP, unmapped.
	Remote   net.Addr
	RemoteIP netip.Addr
	// Local is the address the call arrived on.
	Local net.Addr
	// Network is "tcp" or "udp".
	Network string
}

// Handler serves RPC calls. It appends the results to w and returns nil,
// or returns a *CallError (or any other error, which the transport
// answers SYSTEM_ERR) and leaves w alone.
type Handler interface {
	ServeRPC(ctx context.Context, req *Request, w *xdr.Writer) error
}

// Brief is implemented by a Handler that can tell, before a call runs,
// that it is brief: it computes and reads (memory, the page cache, at
// worst a device read) and never waits for a flush to stable storage, a
// lock, or another client. A transport may run a brief call on the
// goroutine that read it, saving the hand-off to another thread that a
// lone call otherwise pays on its way in and out; a call that is not
// brief would hold up the calls behind it on its connection.
type Brief interface {
	Brief(prog, vers, proc uint32) bool
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, req *Request, w *xdr.Writer) error

// ServeRPC calls f.
func (f HandlerFunc) ServeRPC(ctx context.Context, req *Request, w *xdr.Writer) error {
	return f(ctx, req, w)
}

// CallError is a reply that carries no results: an accept status other
// than SUCCESS, or (Auth non-zero) an authentication error.
type CallError struct {
	Accept AcceptStat
	Auth   AuthStat // non-zero: denied for authentication
	// Low and High are the versions served, for PROG_MISMATCH.
	Low, High uint32
}

func (e *CallError) Error() string {
	switch {
	case e.Auth != 0:
		return fmt.Sprintf("auth error %d", e.Auth)
	case e.Accept == ProgMismatch:
		return fmt.Sprintf("%s (%d-%d)", e.Accept, e.Low, e.High)
	}
	return e.Accept.String()
}

// Errors a Handler returns.
var (
	ErrProgUnavail = &CallError{Accept: ProgUnavail}
	ErrProcUnavail = &CallError{Accept: ProcUnavail}
	ErrGarbageArgs = &CallError{Accept: GarbageArgs}
	ErrSystem      = &CallError{Accept: SystemErr}
	ErrAuthBadCred = &CallError{Auth: AuthBadCred}
	ErrAuthTooWeak = &CallError{Auth: AuthTooWeak}
)

// WriteCallError encodes the reply header for a call that failed with e.
func WriteCallError(w *xdr.Writer, xid uint32, e *CallError) {
	if e.Auth != 0 {
		WriteAuthError(w, xid, e.Auth)
		return
	}
	WriteAccepted(w, xid, e.Accept)
	if e.Accept == ProgMismatch {
		w.Uint32(e.Low)
		w.Uint32(e.High)
	}
}
