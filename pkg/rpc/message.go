// Package rpc implements ONC RPC version 2 (RFC 5531) messages, AUTH_SYS
// credentials and TCP record marking: the parts shared by the server that
// answers NFS, MOUNT, NLM and portmapper calls and by the clients that the
// server (lock callbacks) and the tests use.
package rpc

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// Message types.
const (
	Call  = 0
	Reply = 1
)

// Reply status.
const (
	MsgAccepted = 0
	MsgDenied   = 1
)

// AcceptStat is the status of an accepted call.
type AcceptStat uint32

// Accept statuses.
const (
	Success      AcceptStat = 0
	ProgUnavail  AcceptStat = 1
	ProgMismatch AcceptStat = 2
	ProcUnavail  AcceptStat = 3
	GarbageArgs  AcceptStat = 4
	SystemErr    AcceptStat = 5
)

func (s AcceptStat) String() string {
	switch s {
	case Success:
		return "SUCCESS"
	case ProgUnavail:
		return "PROG_UNAVAIL"
	case ProgMismatch:
		return "PROG_MISMATCH"
	case ProcUnavail:
		return "PROC_UNAVAIL"
	case GarbageArgs:
		return "GARBAGE_ARGS"
	case SystemErr:
		return "SYSTEM_ERR"
	}
	return fmt.Sprintf("accept_stat(%d)", uint32(s))
}

// Reject statuses.
const (
	RPCMismatch = 0
	AuthErr     = 1
)

// AuthStat says why authentication failed.
type AuthStat uint32

// Authentication failures.
const (
	AuthOK           AuthStat = 0
	AuthBadCred      AuthStat = 1
	AuthRejectedCred AuthStat = 2
	AuthBadVerf      AuthStat = 3
	AuthRejectedVerf AuthStat = 4
	AuthTooWeak      AuthStat = 5
)

// Authentication flavors.
const (
	AuthNone = 0
	AuthSys  = 1
)

// Limits from RFC 5531: an opaque_auth body is at most 400 bytes; AUTH_SYS
// carries a machine name of at most 255 bytes and at most 16 extra groups.
const (
	MaxAuthBody    = 400
	MaxMachineName = 255
	MaxAuthGroups  = 16
)

// OpaqueAuth is a credential or verifier as sent on the wire.
type OpaqueAuth struct {
	Flavor uint32
	Body   []byte
}

// CallHeader is the fixed part of a call message.
type CallHeader struct {
	XID  uint32
	Prog uint32
	Vers uint32
	Proc uint32
	Cred OpaqueAuth
	Verf OpaqueAuth
}

// ErrNotCall means the message is not an RPC call.
var ErrNotCall = errors.New("rpc: message is not a call")

// ErrBadRPCVersion means the call used an RPC version other than 2.
var ErrBadRPCVersion = errors.New("rpc: unsupported RPC version")

// ErrBadAuth means the call's header is whole up to its procedure, but its
// credential or verifier is longer than MaxAuthBody or runs past the
// message: the caller, known by XID, is answered AUTH_BADCRED (as knfsd
// does) rather than left to time out.
var ErrBadAuth = errors.New("rpc: credential or verifier too long")

// PeekProc reads the program, version and procedure of the call in rec
// without decoding the rest of its header; ok is false if rec does not
// begin as an RPC version 2 call.
func PeekProc(rec []byte) (prog, vers, proc uint32, ok bool) {
	if len(rec) < 24 || binary.BigEndian.Uint32(rec[4:]) != Call || binary.BigEndian.Uint32(rec[8:]) != 2 {
		return 0, 0, 0, false
	}
	return binary.BigEndian.Uint32(rec[12:]), binary.BigEndian.Uint32(rec[16:]), binary.BigEndian.Uint32(rec[20:]), true
}

// ParseCall decodes a call header from r, leaving r at the procedure
// arguments. On ErrBadRPCVersion the XID is valid so the caller can reply
// RPC_MISMATCH; on other errors the XID may be zero.
func ParseCall(r *xdr.Reader) (CallHeader, error) {
	var h CallHeader
	h.XID = r.Uint32()
	mtype := r.Uint32()
	if r.Err() != nil {
		return h, r.Err()
	}
	if mtype != Call {
		return h, ErrNotCall
	}
	if v := r.Uint32(); v != 2 {
		if r.Err() != nil {
			return h, r.Err()
		}
		return h, ErrBadRPCVersion
	}
	h.Prog = r.Uint32()
	h.Vers = r.Uint32()
	h.Proc = r.Uint32()
	if r.Err() != nil {
		return h, r.Err()
	}
	h.Cred.Flavor = r.Uint32()
	h.Cred.Body = r.Opaque(MaxAuthBody)
	h.Verf.Flavor = r.Uint32()
	h.Verf.Body = r.Opaque(MaxAuthBody)
	if r.Err() != nil {
		return h, ErrBadAuth
	}
	return h, nil
}

// WriteCall encodes a call header with the given credential and an
// AUTH_NONE verifier.
func WriteCall(w *xdr.Writer, xid, prog, vers, proc uint32, cred OpaqueAuth) {
	w.Uint32(xid)
	w.Uint32(Call)
	w.Uint32(2)
	w.Uint32(prog)
	w.Uint32(vers)
	w.Uint32(proc)
	w.Uint32(cred.Flavor)
	w.Opaque(cred.Body)
	w.Uint32(AuthNone)
	w.Uint32(0)
}

// WriteAccepted encodes the header of an accepted reply with an AUTH_NONE
// verifier. For ProgMismatch the caller appends low and high versions.
func WriteAccepted(w *xdr.Writer, xid uint32, stat AcceptStat) {
	w.Uint32(xid)
	w.Uint32(Reply)
	w.Uint32(MsgAccepted)
	w.Uint32(AuthNone)
	w.Uint32(0)
	w.Uint32(uint32(stat))
}

// WriteRPCMismatch encodes a denied reply for an unsupported RPC version.
func WriteRPCMismatch(w *xdr.Writer, xid uint32) {
	w.Uint32(xid)
	w.Uint32(Reply)
	w.Uint32(MsgDenied)
	w.Uint32(RPCMismatch)
	w.Uint32(2)
	w.Uint32(2)
}

// WriteAuthError encodes a denied reply for a failed authentication.
func WriteAuthError(w *xdr.Writer, xid uint32, stat AuthStat) {
	w.Uint32(xid)
	w.Uint32(Reply)
	w.Uint32(MsgDenied)
	w.Uint32(AuthErr)
	w.Uint32(uint32(stat))
}

// ReplyError describes a reply that carried no results.
type ReplyError struct {
	Accept   AcceptStat // when the call was accepted
	Denied   bool
	Auth     AuthStat // when denied for authentication
	Low, Hi  uint32   // version range for ProgMismatch / RPC mismatch
	Mismatch bool     // denied for RPC version
}

func (e *ReplyError) Error() string {
	switch {
	case e.Mismatch:
		return fmt.Sprintf("rpc: RPC version mismatch (server supports %d-%d)", e.Low, e.Hi)
	case e.Denied:
		return fmt.Sprintf("rpc: call denied, auth stat %d", e.Auth)
	case e.Accept == ProgMismatch:
		return fmt.Sprintf("rpc: program version mismatch (server supports %d-%d)", e.Low, e.Hi)
	}
	return "rpc: " + e.Accept.String()
}

// ParseReply decodes a reply header, leaving r at the results. It returns
// a *ReplyError when the reply carries no results.
func ParseReply(r *xdr.Reader) (xid uint32, err error) {
	xid = r.Uint32()
	if mtype := r.Uint32(); r.Err() == nil && mtype != Reply {
		return xid, errors.New("rpc: message is not a reply")
	}
	switch r.Uint32() {
	case MsgAccepted:
		r.Uint32()
		r.Opaque(MaxAuthBody)
		stat := AcceptStat(r.Uint32())
		if r.Err() != nil {
			return xid, r.Err()
		}
		if stat == Success {
			return xid, nil
		}
		e := &ReplyError{Accept: stat}
		if stat == ProgMismatch {
			e.Low, e.Hi = r.Uint32(), r.Uint32()
			if r.Err() != nil {
				return xid, r.Err()
			}
		}
		return xid, e
	case MsgDenied:
		e := &ReplyError{Denied: true}
		if r.Uint32() == RPCMismatch {
			e.Mismatch = true
			e.Low, e.Hi = r.Uint32(), r.Uint32()
		} else {
			e.Auth = AuthStat(r.Uint32())
		}
		if r.Err() != nil {
			return xid, r.Err()
		}
		return xid, e
	}
	if r.Err() != nil {
		return xid, r.Err()
	}
	return xid, errors.New("rpc: bad reply status")
}
