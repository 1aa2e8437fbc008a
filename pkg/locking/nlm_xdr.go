package locking

import (
	"errors"
	"fmt"

	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// NLM v4 (program 100021, version 4) as specified by the Open Group's XNFS
// and RFC 1813 appendix II.

// Program and version numbers.
const (
	NLMProg = 100021
	NLMVers = 4
)

// NLM v4 procedures.
const (
	ProcNull       = 0
	ProcTest       = 1
	ProcLock       = 2
	ProcCancel     = 3
	ProcUnlock     = 4
	ProcGranted    = 5
	ProcTestMsg    = 6
	ProcLockMsg    = 7
	ProcCancelMsg  = 8
	ProcUnlockMsg  = 9
	ProcGrantedMsg = 10
	ProcTestRes    = 11
	ProcLockRes    = 12
	ProcCancelRes  = 13
	ProcUnlockRes  = 14
	ProcGrantedRes = 15
	ProcShare      = 20
	ProcUnshare    = 21
	ProcNMLock     = 22
	ProcFreeAll    = 23
)

// Protocol limits: LM_MAXSTRLEN for caller names, MAXNETOBJ_SZ for
// netobjs (cookies, file and owner handles), LM_MAXNAMELEN for the name
// in nlm4_notify.
const (
	MaxCallerName = 1024
	MaxNetobj     = 1024
	MaxNotifyName = 1025
)

// Stat is nlm4_stats.
type Stat uint32

// nlm4_stats values.
const (
	StatGranted           Stat = 0
	StatDenied            Stat = 1
	StatDeniedNoLocks     Stat = 2
	StatBlocked           Stat = 3
	StatDeniedGracePeriod Stat = 4
	StatDeadlock          Stat = 5
	StatROFS              Stat = 6
	StatStaleFH           Stat = 7
	StatFBig              Stat = 8
	StatFailed            Stat = 9
)

func (s Stat) String() string {
	names := [...]string{"NLM4_GRANTED", "NLM4_DENIED", "NLM4_DENIED_NOLOCKS", "NLM4_BLOCKED",
		"NLM4_DENIED_GRACE_PERIOD", "NLM4_DEADLCK", "NLM4_ROFS", "NLM4_STALE_FH", "NLM4_FBIG", "NLM4_FAILED"}
	if int(s) < len(names) {
		return names[s]
	}
	return fmt.Sprintf("nlm4_stats(%d)", uint32(s))
}

var errBadEnum = errors.New("locking: enum value out of range")

// Lock4 is nlm4_lock.
type Lock4 struct {
	CallerName string
	FH         []byte
	OH         []byte
	Svid       int32
	Offset     uint64
	Len        uint64
}

// Decode reads an nlm4_lock.
func (l *Lock4) Decode(r *xdr.Reader) {
	l.CallerName = r.String(MaxCallerName)
	l.FH = r.Opaque(MaxNetobj)
	l.OH = r.Opaque(MaxNetobj)
	l.Svid = r.Int32()
	l.Offset = r.Uint64()
	l.Len = r.Uint64()
}

// Encode writes an nlm4_lock.
func (l *Lock4) Encode(w *xdr.Writer) {
	w.String(l.CallerName)
	w.Opaque(l.FH)
	w.Opaque(l.OH)
	w.Int32(l.Svid)
	w.Uint64(l.Offset)
	w.Uint64(l.Len)
}

// clone returns a copy that does not alias the request buffer.
func (l Lock4) clone() Lock4 {
	l.FH = append([]byte(nil), l.FH...)
	l.OH = append([]byte(nil), l.OH...)
	return l
}

// Holder4 is nlm4_holder.
type Holder4 struct {
	Exclusive bool
	Svid      int32
	OH        []byte
	Offset    uint64
	Len       uint64
}

// Decode reads an nlm4_holder.
func (h *Holder4) Decode(r *xdr.Reader) {
	h.Exclusive = r.Bool()
	h.Svid = r.Int32()
	h.OH = r.Opaque(MaxNetobj)
	h.Offset = r.Uint64()
	h.Len = r.Uint64()
}

// Encode writes an nlm4_holder.
func (h *Holder4) Encode(w *xdr.Writer) {
	w.Bool(h.Exclusive)
	w.Int32(h.Svid)
	w.Opaque(h.OH)
	w.Uint64(h.Offset)
	w.Uint64(h.Len)
}

// TestArgs is nlm4_testargs (also the argument of GRANTED).
type TestArgs struct {
	Cookie    []byte
	Exclusive bool
	Lock      Lock4
}

// Decode reads nlm4_testargs and returns the reader's error.
func (a *TestArgs) Decode(r *xdr.Reader) error {
	a.Cookie = r.Opaque(MaxNetobj)
	a.Exclusive = r.Bool()
	a.Lock.Decode(r)
	return r.Err()
}

// Encode writes nlm4_testargs.
func (a *TestArgs) Encode(w *xdr.Writer) {
	w.Opaque(a.Cookie)
	w.Bool(a.Exclusive)
	a.Lock.Encode(w)
}

// LockArgs is nlm4_lockargs.
type LockArgs struct {
	Cookie    []byte
	Block     bool
	Exclusive bool
	Lock      Lock4
	Reclaim   bool
	State     int32
}

// Decode reads nlm4_lockargs and returns the reader's error.
func (a *LockArgs) Decode(r *xdr.Reader) error {
	a.Cookie = r.Opaque(MaxNetobj)
	a.Block = r.Bool()
	a.Exclusive = r.Bool()
	a.Lock.Decode(r)
	a.Reclaim = r.Bool()
	a.State = r.Int32()
	return r.Err()
}

// Encode writes nlm4_lockargs.
func (a *LockArgs) Encode(w *xdr.Writer) {
	w.Opaque(a.Cookie)
	w.Bool(a.Block)
	w.Bool(a.Exclusive)
	a.Lock.Encode(w)
	w.Bool(a.Reclaim)
	w.Int32(a.State)
}

// CancArgs is nlm4_cancargs.
type CancArgs struct {
	Cookie    []byte
	Block     bool
	Exclusive bool
	Lock      Lock4
}

// Decode reads nlm4_cancargs and returns the reader's error.
func (a *CancArgs) Decode(r *xdr.Reader) error {
	a.Cookie = r.Opaque(MaxNetobj)
	a.Block = r.Bool()
	a.Exclusive = r.Bool()
	a.Lock.Decode(r)
	return r.Err()
}

// Encode writes nlm4_cancargs.
func (a *CancArgs) Encode(w *xdr.Writer) {
	w.Opaque(a.Cookie)
	w.Bool(a.Block)
	w.Bool(a.Exclusive)
	a.Lock.Encode(w)
}

// UnlockArgs is nlm4_unlockargs.
type UnlockArgs struct {
	Cookie []byte
	Lock   Lock4
}

// Decode reads nlm4_unlockargs and returns the reader's error.
func (a *UnlockArgs) Decode(r *xdr.Reader) error {
	a.Cookie = r.Opaque(MaxNetobj)
	a.Lock.Decode(r)
	return r.Err()
}

// Encode writes nlm4_unlockargs.
func (a *UnlockArgs) Encode(w *xdr.Writer) {
	w.Opaque(a.Cookie)
	a.Lock.Encode(w)
}

// Res is nlm4_res.
type Res struct {
	Cookie []byte
	Stat   Stat
}

// Decode reads nlm4_res and returns the reader's error. Status values
// this package does not know are kept as they are.
func (a *Res) Decode(r *xdr.Reader) error {
	a.Cookie = r.Opaque(MaxNetobj)
	a.Stat = Stat(r.Uint32())
	return r.Err()
}

// Encode writes nlm4_res.
func (a *Res) Encode(w *xdr.Writer) {
	w.Opaque(a.Cookie)
	w.Uint32(uint32(a.Stat))
}

// TestRes is nlm4_testres; Holder is meaningful only when Stat is
// StatDenied.
type TestRes struct {
	Cookie []byte
	Stat   Stat
	Holder Holder4
}

// Decode reads nlm4_testres and returns the reader's error.
func (a *TestRes) Decode(r *xdr.Reader) error {
	a.Cookie = r.Opaque(MaxNetobj)
	a.Stat = Stat(r.Uint32())
	if a.Stat == StatDenied {
		a.Holder.Decode(r)
	} else {
		a.Holder = Holder4{}
	}
	return r.Err()
}

// Encode writes nlm4_testres.
func (a *TestRes) Encode(w *xdr.Writer) {
	w.Opaque(a.Cookie)
	w.Uint32(uint32(a.Stat))
	if a.Stat == StatDenied {
		a.Holder.Encode(w)
	}
}

// Share4 is nlm4_share.
type Share4 struct {
	CallerName string
	FH         []byte
	OH         []byte
	Mode       uint32 // fsh4_mode: deny none, read, write, both (0-3)
	Access     uint32 // fsh4_access: none, read, write, both (0-3)
}

// Decode reads nlm4_share.
func (s *Share4) Decode(r *xdr.Reader) {
	s.CallerName = r.String(MaxCallerName)
	s.FH = r.Opaque(MaxNetobj)
	s.OH = r.Opaque(MaxNetobj)
	s.Mode = r.Uint32()
	s.Access = r.Uint32()
	if s.Mode > ShareBoth || s.Access > ShareBoth {
		r.Fail(errBadEnum)
	}
}

// Encode writes nlm4_share.
func (s *Share4) Encode(w *xdr.Writer) {
	w.String(s.CallerName)
	w.Opaque(s.FH)
	w.Opaque(s.OH)
	w.Uint32(s.Mode)
	w.Uint32(s.Access)
}

// ShareArgs is nlm4_shareargs.
type ShareArgs struct {
	Cookie  []byte
	Share   Share4
	Reclaim bool
}

// Decode reads nlm4_shareargs and returns the reader's error.
func (a *ShareArgs) Decode(r *xdr.Reader) error {
	a.Cookie = r.Opaque(MaxNetobj)
	a.Share.Decode(r)
	a.Reclaim = r.Bool()
	return r.Err()
}

// Encode writes nlm4_shareargs.
func (a *ShareArgs) Encode(w *xdr.Writer) {
	w.Opaque(a.Cookie)
	a.Share.Encode(w)
	w.Bool(a.Reclaim)
}

// ShareRes is nlm4_shareres.
type ShareRes struct {
	Cookie   []byte
	Stat     Stat
	Sequence int32
}

// Decode reads nlm4_shareres and returns the reader's error.
func (a *ShareRes) Decode(r *xdr.Reader) error {
	a.Cookie = r.Opaque(MaxNetobj)
	a.Stat = Stat(r.Uint32())
	a.Sequence = r.Int32()
	return r.Err()
}

// Encode writes nlm4_shareres.
func (a *ShareRes) Encode(w *xdr.Writer) {
	w.Opaque(a.Cookie)
	w.Uint32(uint32(a.Stat))
	w.Int32(a.Sequence)
}

// Notify is nlm4_notify, the argument of FREE_ALL.
type Notify struct {
	Name  string
	State int32
}

// Decode reads nlm4_notify and returns the reader's error.
func (a *Notify) Decode(r *xdr.Reader) error {
	a.Name = r.String(MaxNotifyName)
	a.State = r.Int32()
	return r.Err()
}

// Encode writes nlm4_notify.
func (a *Notify) Encode(w *xdr.Writer) {
	w.String(a.Name)
	w.Int32(a.State)
}
