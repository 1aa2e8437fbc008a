package locking

import "github.com/rwxnfs/rwxnfs/pkg/xdr"

// NSM, the status monitor (program 100024, version 1), as in the XNFS
// specification.

// Program and version numbers.
const (
	NSMProg = 100024
	NSMVers = 1
)

// NSM procedures.
const (
	SMProcNull      = 0
	SMProcStat      = 1
	SMProcMon       = 2
	SMProcUnmon     = 3
	SMProcUnmonAll  = 4
	SMProcSimuCrash = 5
	SMProcNotify    = 6
	SMMaxStrLen     = 1024
	smPrivLen       = 16
	SMStatSucc      = 0
	SMStatFail      = 1
)

// SMName is sm_name, the argument of SM_STAT.
type SMName struct{ MonName string }

// Decode reads sm_name and returns the reader's error.
func (a *SMName) Decode(r *xdr.Reader) error {
	a.MonName = r.String(SMMaxStrLen)
	return r.Err()
}

// Encode writes sm_name.
func (a *SMName) Encode(w *xdr.Writer) { w.String(a.MonName) }

// SMStatRes is sm_stat_res.
type SMStatRes struct {
	Res   uint32 // SMStatSucc or SMStatFail
	State int32
}

// Decode reads sm_stat_res and returns the reader's error.
func (a *SMStatRes) Decode(r *xdr.Reader) error {
	a.Res = r.Uint32()
	a.State = r.Int32()
	return r.Err()
}

// Encode writes sm_stat_res.
func (a *SMStatRes) Encode(w *xdr.Writer) {
	w.Uint32(a.Res)
	w.Int32(a.State)
}

// MyID is my_id: the RPC procedure a monitor registration calls back.
type MyID struct {
	MyName           string
	Prog, Vers, Proc int32
}

// Decode reads my_id and returns the reader's error.
func (a *MyID) Decode(r *xdr.Reader) error {
	a.MyName = r.String(SMMaxStrLen)
	a.Prog = r.Int32()
	a.Vers = r.Int32()
	a.Proc = r.Int32()
	return r.Err()
}

// Encode writes my_id.
func (a *MyID) Encode(w *xdr.Writer) {
	w.String(a.MyName)
	w.Int32(a.Prog)
	w.Int32(a.Vers)
	w.Int32(a.Proc)
}

// MonID is mon_id.
type MonID struct {
	MonName string
	MyID    MyID
}

// Decode reads mon_id and returns the reader's error.
func (a *MonID) Decode(r *xdr.Reader) error {
	a.MonName = r.String(SMMaxStrLen)
	return a.MyID.Decode(r)
}

// Encode writes mon_id.
func (a *MonID) Encode(w *xdr.Writer) {
	w.String(a.MonName)
	a.MyID.Encode(w)
}

// Mon is mon, the argument of SM_MON.
type Mon struct {
	MonID MonID
	Priv  [smPrivLen]byte
}

// Decode reads mon and returns the reader's error.
func (a *Mon) Decode(r *xdr.Reader) error {
	a.MonID.Decode(r)
	copy(a.Priv[:], r.FixedOpaque(smPrivLen))
	return r.Err()
}

// Encode writes mon.
func (a *Mon) Encode(w *xdr.Writer) {
	a.MonID.Encode(w)
	w.FixedOpaque(a.Priv[:])
}

// StatChge is stat_chge, the argument of SM_NOTIFY.
type StatChge struct {
	MonName string
	State   int32
}

// Decode reads stat_chge and returns the reader's error.
func (a *StatChge) Decode(r *xdr.Reader) error {
	a.MonName = r.String(SMMaxStrLen)
	a.State = r.Int32()
	return r.Err()
}

// Encode writes stat_chge.
func (a *StatChge) Encode(w *xdr.Writer) {
	w.String(a.MonName)
	w.Int32(a.State)
}

// SMStatus is status, the argument of the callback a monitor
// registration asked for.
type SMStatus struct {
	MonName string
	State   int32
	Priv    [smPrivLen]byte
}

// Decode reads status and returns the reader's error.
func (a *SMStatus) Decode(r *xdr.Reader) error {
	a.MonName = r.String(SMMaxStrLen)
	a.State = r.Int32()
	copy(a.Priv[:], r.FixedOpaque(smPrivLen))
	return r.Err()
}

// Encode writes status.
func (a *SMStatus) Encode(w *xdr.Writer) {
	w.String(a.MonName)
	w.Int32(a.State)
	w.FixedOpaque(a.Priv[:])
}
