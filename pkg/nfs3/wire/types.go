package wire

import (
	"encoding/binary"
	"errors"

	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// errBadValue fails a decode on a discriminant or field value RFC 1813
// does not allow.
var errBadValue = errors.New("wire: value out of range")

// FileType is ftype3.
type FileType uint32

// ftype3 values.
const (
	TypeReg  FileType = 1
	TypeDir  FileType = 2
	TypeBlk  FileType = 3
	TypeChr  FileType = 4
	TypeLnk  FileType = 5
	TypeSock FileType = 6
	TypeFifo FileType = 7
)

// Time is nfstime3.
type Time struct{ Sec, Nsec uint32 }

func (t *Time) encode(w *xdr.Writer) {
	w.Uint32(t.Sec)
	w.Uint32(t.Nsec)
}

func (t *Time) decode(r *xdr.Reader) {
	t.Sec = r.Uint32()
	t.Nsec = r.Uint32()
}

// SpecData is specdata3: a device's major and minor numbers.
type SpecData struct{ Major, Minor uint32 }

// FattrSize is the encoded size of fattr3.
const FattrSize = 84

// Fattr is fattr3.
type Fattr struct {
	Type                FileType
	Mode, Nlink         uint32
	UID, GID            uint32
	Size, Used          uint64
	Rdev                SpecData
	FSID, FileID        uint64
	Atime, Mtime, Ctime Time
}

// Encode appends the attributes. They are written into one grown slice
// rather than field by field: READDIRPLUS encodes them for every entry.
func (a *Fattr) Encode(w *xdr.Writer) {
	b := w.Grow(FattrSize)
	_ = b[FattrSize-1]
	be := binary.BigEndian
	be.PutUint32(b[0:], uint32(a.Type))
	be.PutUint32(b[4:], a.Mode)
	be.PutUint32(b[8:], a.Nlink)
	be.PutUint32(b[12:], a.UID)
	be.PutUint32(b[16:], a.GID)
	be.PutUint64(b[20:], a.Size)
	be.PutUint64(b[28:], a.Used)
	be.PutUint32(b[36:], a.Rdev.Major)
	be.PutUint32(b[40:], a.Rdev.Minor)
	be.PutUint64(b[44:], a.FSID)
	be.PutUint64(b[52:], a.FileID)
	be.PutUint32(b[60:], a.Atime.Sec)
	be.PutUint32(b[64:], a.Atime.Nsec)
	be.PutUint32(b[68:], a.Mtime.Sec)
	be.PutUint32(b[72:], a.Mtime.Nsec)
	be.PutUint32(b[76:], a.Ctime.Sec)
	be.PutUint32(b[80:], a.Ctime.Nsec)
}

// Decode reads the attributes.
func (a *Fattr) Decode(r *xdr.Reader) error {
	a.Type = FileType(r.Uint32())
	a.Mode = r.Uint32()
	a.Nlink = r.Uint32()
	a.UID = r.Uint32()
	a.GID = r.Uint32()
	a.Size = r.Uint64()
	a.Used = r.Uint64()
	a.Rdev.Major = r.Uint32()
	a.Rdev.Minor = r.Uint32()
	a.FSID = r.Uint64()
	a.FileID = r.Uint64()
	a.Atime.decode(r)
	a.Mtime.decode(r)
	a.Ctime.decode(r)
	return r.Err()
}

// PostOpAttr is post_op_attr: attributes, if Set.
type PostOpAttr struct {
	Set  bool
	Attr Fattr
}

func (p *PostOpAttr) encode(w *xdr.Writer) {
	w.Bool(p.Set)
	if p.Set {
		p.Attr.Encode(w)
	}
}

func (p *PostOpAttr) decode(r *xdr.Reader) {
	if p.Set = r.Bool(); p.Set {
		p.Attr.Decode(r)
	}
}

// WccAttr is wcc_attr: what weak cache consistency reports of an object
// before a change.
type WccAttr struct {
	Size         uint64
	Mtime, Ctime Time
}

// PreOpAttr is pre_op_attr.
type PreOpAttr struct {
	Set  bool
	Attr WccAttr
}

// WccData is wcc_data: an object's attributes before and after a change.
type WccData struct {
	Before PreOpAttr
	After  PostOpAttr
}

func (d *WccData) encode(w *xdr.Writer) {
	w.Bool(d.Before.Set)
	if d.Before.Set {
		w.Uint64(d.Before.Attr.Size)
		d.Before.Attr.Mtime.encode(w)
		d.Before.Attr.Ctime.encode(w)
	}
	d.After.encode(w)
}

func (d *WccData) decode(r *xdr.Reader) {
	if d.Before.Set = r.Bool(); d.Before.Set {
		d.Before.Attr.Size = r.Uint64()
		d.Before.Attr.Mtime.decode(r)
		d.Before.Attr.Ctime.decode(r)
	}
	d.After.decode(r)
}

// PostOpFH is post_op_fh3: a handle, if Set.
type PostOpFH struct {
	Set bool
	FH  []byte
}

func (p *PostOpFH) encode(w *xdr.Writer) {
	w.Bool(p.Set)
	if p.Set {
		w.Opaque(p.FH)
	}
}

func (p *PostOpFH) decode(r *xdr.Reader) {
	if p.Set = r.Bool(); p.Set {
		p.FH = r.Opaque(MaxHandle)
	}
}

// time_how values of set_atime and set_mtime.
const (
	DontChange      = 0
	SetToServerTime = 1
	SetToClientTime = 2
)

// SetTime is set_atime or set_mtime: how to change a time, and the
// client's time for SetToClientTime.
type SetTime struct {
	How  uint32
	Time Time
}

func (t *SetTime) encode(w *xdr.Writer) {
	w.Uint32(t.How)
	if t.How == SetToClientTime {
		t.Time.encode(w)
	}
}

func (t *SetTime) decode(r *xdr.Reader) {
	switch t.How = r.Uint32(); t.How {
	case DontChange, SetToServerTime:
	case SetToClientTime:
		t.Time.decode(r)
		if t.Time.Nsec > 999999999 {
			r.Fail(errBadValue)
		}
	default:
		r.Fail(errBadValue)
	}
}

// Sattr is sattr3: the attributes a SETATTR or a create sets. The mode
// keeps its permission and set-id bits only (the rest means nothing).
type Sattr struct {
	SetMode, SetUID, SetGID, SetSize bool
	Mode, UID, GID                   uint32
	Size                             uint64
	Atime, Mtime                     SetTime
}

// Empty reports whether the sattr3 sets nothing.
func (s *Sattr) Empty() bool {
	return !s.SetMode && !s.SetUID && !s.SetGID && !s.SetSize && s.Atime.How == DontChange && s.Mtime.How == DontChange
}

// Encode appends the sattr3.
func (s *Sattr) Encode(w *xdr.Writer) {
	opt := func(set bool, v uint32) {
		w.Bool(set)
		if set {
			w.Uint32(v)
		}
	}
	opt(s.SetMode, s.Mode)
	opt(s.SetUID, s.UID)
	opt(s.SetGID, s.GID)
	w.Bool(s.SetSize)
	if s.SetSize {
		w.Uint64(s.Size)
	}
	s.Atime.encode(w)
	s.Mtime.encode(w)
}

// Decode reads a sattr3.
func (s *Sattr) Decode(r *xdr.Reader) error {
	if s.SetMode = r.Bool(); s.SetMode {
		s.Mode = r.Uint32() & 0o7777
	}
	if s.SetUID = r.Bool(); s.SetUID {
		s.UID = r.Uint32()
	}
	if s.SetGID = r.Bool(); s.SetGID {
		s.GID = r.Uint32()
	}
	if s.SetSize = r.Bool(); s.SetSize {
		s.Size = r.Uint64()
	}
	s.Atime.decode(r)
	s.Mtime.decode(r)
	return r.Err()
}

// DiropArgs is diropargs3: a name in a directory.
type DiropArgs struct {
	Dir  []byte
	Name string
}

func (d *DiropArgs) encode(w *xdr.Writer) {
	w.Opaque(d.Dir)
	w.String(d.Name)
}

func (d *DiropArgs) decode(r *xdr.Reader) {
	d.Dir = r.Opaque(MaxHandle)
	d.Name = r.String(MaxName)
}

// encodeStatus appends a result's status.
func encodeStatus(w *xdr.Writer, s Status) { w.Uint32(uint32(s)) }

// decodeStatus reads a result's status.
func decodeStatus(r *xdr.Reader) Status { return Status(r.Uint32()) }
