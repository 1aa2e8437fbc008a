package wire

import "github.com/rwxnfs/rwxnfs/pkg/xdr"

// Each procedure's arguments and results. A result type encodes its
// resok arm when Status is OK and its resfail arm otherwise: the fields
// that only resok carries are then not sent.

// FHArgs is the arguments of GETATTR, READLINK, FSSTAT, FSINFO and
// PATHCONF: one handle.
type FHArgs struct{ FH []byte }

func (a *FHArgs) Encode(w *xdr.Writer) { w.Opaque(a.FH) }

func (a *FHArgs) Decode(r *xdr.Reader) error {
	a.FH = r.Opaque(MaxHandle)
	return r.Err()
}

// GetattrRes is GETATTR3res.
type GetattrRes struct {
	Status Status
	Attr   Fattr
}

func (res *GetattrRes) Encode(w *xdr.Writer) {
	encodeStatus(w, res.Status)
	if res.Status == OK {
		res.Attr.Encode(w)
	}
}

func (res *GetattrRes) Decode(r *xdr.Reader) error {
	if res.Status = decodeStatus(r); res.Status == OK {
		res.Attr.Decode(r)
	}
	return r.Err()
}

// SetattrArgs is SETATTR3args; Guard, if Check, is the ctime the client
// last saw.
type SetattrArgs struct {
	FH    []byte
	Attr  Sattr
	Check bool
	Guard Time
}

func (a *SetattrArgs) Encode(w *xdr.Writer) {
	w.Opaque(a.FH)
	a.Attr.Encode(w)
	w.Bool(a.Check)
	if a.Check {
		a.Guard.encode(w)
	}
}

func (a *SetattrArgs) Decode(r *xdr.Reader) error {
	a.FH = r.Opaque(MaxHandle)
	a.Attr.Decode(r)
	if a.Check = r.Bool(); a.Check {
		a.Guard.decode(r)
	}
	return r.Err()
}

// WccRes is the results of SETATTR, REMOVE and RMDIR: a status and one
// object's wcc data, whatever the status.
type WccRes struct {
	Status Status
	Wcc    WccData
}

func (res *WccRes) Encode(w *xdr.Writer) {
	encodeStatus(w, res.Status)
	res.Wcc.encode(w)
}

func (res *WccRes) Decode(r *xdr.Reader) error {
	res.Status = decodeStatus(r)
	res.Wcc.decode(r)
	return r.Err()
}

// LookupArgs is LOOKUP3args, and REMOVE3args and RMDIR3args: a name in a
// directory.
type LookupArgs = DiropArgs

// Encode appends diropargs3.
func (d *DiropArgs) Encode(w *xdr.Writer) { d.encode(w) }

// Decode reads diropargs3.
func (d *DiropArgs) Decode(r *xdr.Reader) error {
	d.decode(r)
	return r.Err()
}

// LookupRes is LOOKUP3res.
type LookupRes struct {
	Status  Status
	FH      []byte     // resok
	Attr    PostOpAttr // resok
	DirAttr PostOpAttr
}

func (res *LookupRes) Encode(w *xdr.Writer) {
	encodeStatus(w, res.Status)
	if res.Status == OK {
		w.Opaque(res.FH)
		res.Attr.encode(w)
	}
	res.DirAttr.encode(w)
}

func (res *LookupRes) Decode(r *xdr.Reader) error {
	if res.Status = decodeStatus(r); res.Status == OK {
		res.FH = r.Opaque(MaxHandle)
		res.Attr.decode(r)
	}
	res.DirAttr.decode(r)
	return r.Err()
}

// ACCESS3 bits.
const (
	AccessRead    = 0x01
	AccessLookup  = 0x02
	AccessModify  = 0x04
	AccessExtend  = 0x08
	AccessDelete  = 0x10
	AccessExecute = 0x20
)

// AccessArgs is ACCESS3args.
type AccessArgs struct {
	FH     []byte
	Access uint32
}

func (a *AccessArgs) Encode(w *xdr.Writer) {
	w.Opaque(a.FH)
	w.Uint32(a.Access)
}

func (a *AccessArgs) Decode(r *xdr.Reader) error {
	a.FH = r.Opaque(MaxHandle)
	a.Access = r.Uint32()
	return r.Err()
}

// AccessRes is ACCESS3res.
type AccessRes struct {
	Status Status
	Attr   PostOpAttr
	Access uint32 // resok
}

func (res *AccessRes) Encode(w *xdr.Writer) {
	encodeStatus(w, res.Status)
	res.Attr.encode(w)
	if res.Status == OK {
		w.Uint32(res.Access)
	}
}

func (res *AccessRes) Decode(r *xdr.Reader) error {
	res.Status = decodeStatus(r)
	res.Attr.decode(r)
	if res.Status == OK {
		res.Access = r.Uint32()
	}
	return r.Err()
}

// ReadlinkRes is READLINK3res.
type ReadlinkRes struct {
	Status Status
	Attr   PostOpAttr
	Path   string // resok
}

func (res *ReadlinkRes) Encode(w *xdr.Writer) {
	encodeStatus(w, res.Status)
	res.Attr.encode(w)
	if res.Status == OK {
		w.String(res.Path)
	}
}

func (res *ReadlinkRes) Decode(r *xdr.Reader) error {
	res.Status = decodeStatus(r)
	res.Attr.decode(r)
	if res.Status == OK {
		res.Path = r.String(MaxPath)
	}
	return r.Err()
}

// ReadArgs is READ3args.
type ReadArgs struct {
	FH     []byte
	Offset uint64
	Count  uint32
}

func (a *ReadArgs) Encode(w *xdr.Writer) {
	w.Opaque(a.FH)
	w.Uint64(a.Offset)
	w.Uint32(a.Count)
}

func (a *ReadArgs) Decode(r *xdr.Reader) error {
	a.FH = r.Opaque(MaxHandle)
	a.Offset = r.Uint64()
	a.Count = r.Uint32()
	return r.Err()
}

// ReadRes is READ3res. Count is the number of bytes read, which is
// len(Data).
type ReadRes struct {
	Status Status
	Attr   PostOpAttr
	Count  uint32 // resok
	EOF    bool   // resok
	Data   []byte // resok
}

func (res *ReadRes) Encode(w *xdr.Writer) {
	encodeStatus(w, res.Status)
	res.Attr.encode(w)
	if res.Status == OK {
		w.Uint32(res.Count)
		w.Bool(res.EOF)
		w.Opaque(res.Data)
	}
}

func (res *ReadRes) Decode(r *xdr.Reader) error {
	res.Status = decodeStatus(r)
	res.Attr.decode(r)
	if res.Status == OK {
		res.Count = r.Uint32()
		res.EOF = r.Bool()
		res.Data = r.Opaque(MaxReadData)
	}
	return r.Err()
}

// ReadOKHeaderSize is the size of a successful READ3res with attributes,
// up to its data: status, post_op_attr, count, eof and the data's length.
const ReadOKHeaderSize = 4 + 4 + FattrSize + 4 + 4 + 4

// EncodeOKHeaderAt writes the part of a successful READ3res (with
// attributes) before its data into the ReadOKHeaderSize bytes at off,
// for a server that read the data into w behind them. len(res.Data) is
// the data's length.
func (res *ReadRes) EncodeOKHeaderAt(w *xdr.Writer, off int) {
	win := w.Window(off, ReadOKHeaderSize)
	encodeStatus(&win, OK)
	res.Attr.encode(&win)
	win.Uint32(res.Count)
	win.Bool(res.EOF)
	win.Uint32(uint32(len(res.Data)))
	if !win.Filled() {
		panic("wire: READ header written without attributes")
	}
}

// stable_how values.
const (
	Unstable = 0
	DataSync = 1
	FileSync = 2
)

// WriteArgs is WRITE3args. The data may be longer than Count (the
// server writes Count bytes of it).
type WriteArgs struct {
	FH     []byte
	Offset uint64
	Count  uint32
	Stable uint32
	Data   []byte
}

func (a *WriteArgs) Encode(w *xdr.Writer) {
	w.Opaque(a.FH)
	w.Uint64(a.Offset)
	w.Uint32(a.Count)
	w.Uint32(a.Stable)
	w.Opaque(a.Data)
}

func (a *WriteArgs) Decode(r *xdr.Reader) error {
	a.FH = r.Opaque(MaxHandle)
	a.Offset = r.Uint64()
	a.Count = r.Uint32()
	a.Stable = r.Uint32()
	a.Data = r.Opaque(MaxWriteData)
	if a.Stable > FileSync {
		r.Fail(errBadValue)
	}
	return r.Err()
}

// WriteRes is WRITE3res.
type WriteRes struct {
	Status    Status
	Wcc       WccData
	Count     uint32  // resok
	Committed uint32  // resok
	Verf      [8]byte // resok
}

func (res *WriteRes) Encode(w *xdr.Writer) {
	encodeStatus(w, res.Status)
	res.Wcc.encode(w)
	if res.Status == OK {
		w.Uint32(res.Count)
		w.Uint32(res.Committed)
		w.FixedOpaque(res.Verf[:])
	}
}

func (res *WriteRes) Decode(r *xdr.Reader) error {
	res.Status = decodeStatus(r)
	res.Wcc.decode(r)
	if res.Status == OK {
		res.Count = r.Uint32()
		res.Committed = r.Uint32()
		copy(res.Verf[:], r.FixedOpaque(8))
		if res.Committed > FileSync {
			r.Fail(errBadValue)
		}
	}
	return r.Err()
}

// createhow3 modes.
const (
	Unchecked = 0
	Guarded   = 1
	Exclusive = 2
)

// CreateArgs is CREATE3args: Attr for UNCHECKED and GUARDED, Verf for
// EXCLUSIVE.
type CreateArgs struct {
	Where DiropArgs
	Mode  uint32
	Attr  Sattr
	Verf  [8]byte
}

func (a *CreateArgs) Encode(w *xdr.Writer) {
	a.Where.encode(w)
	w.Uint32(a.Mode)
	switch a.Mode {
	case Unchecked, Guarded:
		a.Attr.Encode(w)
	case Exclusive:
		w.FixedOpaque(a.Verf[:])
	}
}

func (a *CreateArgs) Decode(r *xdr.Reader) error {
	a.Where.decode(r)
	switch a.Mode = r.Uint32(); a.Mode {
	case Unchecked, Guarded:
		a.Attr.Decode(r)
	case Exclusive:
		copy(a.Verf[:], r.FixedOpaque(8))
	default:
		r.Fail(errBadValue)
	}
	return r.Err()
}

// MkdirArgs is MKDIR3args.
type MkdirArgs struct {
	Where DiropArgs
	Attr  Sattr
}

func (a *MkdirArgs) Encode(w *xdr.Writer) {
	a.Where.encode(w)
	a.Attr.Encode(w)
}

func (a *MkdirArgs) Decode(r *xdr.Reader) error {
	a.Where.decode(r)
	a.Attr.Decode(r)
	return r.Err()
}

// SymlinkArgs is SYMLINK3args.
type SymlinkArgs struct {
	Where  DiropArgs
	Attr   Sattr
	Target string
}

func (a *SymlinkArgs) Encode(w *xdr.Writer) {
	a.Where.encode(w)
	a.Attr.Encode(w)
	w.String(a.Target)
}

func (a *SymlinkArgs) Decode(r *xdr.Reader) error {
	a.Where.decode(r)
	a.Attr.Decode(r)
	a.Target = r.String(MaxPath)
	return r.Err()
}

// MknodArgs is MKNOD3args: Attr for every type it makes, Spec for
// character and block devices. Other types carry nothing more.
type MknodArgs struct {
	Where DiropArgs
	Type  FileType
	Attr  Sattr
	Spec  SpecData
}

func (a *MknodArgs) Encode(w *xdr.Writer) {
	a.Where.encode(w)
	w.Uint32(uint32(a.Type))
	switch a.Type {
	case TypeChr, TypeBlk:
		a.Attr.Encode(w)
		w.Uint32(a.Spec.Major)
		w.Uint32(a.Spec.Minor)
	case TypeSock, TypeFifo:
		a.Attr.Encode(w)
	}
}

func (a *MknodArgs) Decode(r *xdr.Reader) error {
	a.Where.decode(r)
	switch a.Type = FileType(r.Uint32()); a.Type {
	case TypeChr, TypeBlk:
		a.Attr.Decode(r)
		a.Spec.Major = r.Uint32()
		a.Spec.Minor = r.Uint32()
	case TypeSock, TypeFifo:
		a.Attr.Decode(r)
	}
	return r.Err()
}

// CreatedRes is the results of CREATE, MKDIR, SYMLINK and MKNOD.
type CreatedRes struct {
	Status Status
	FH     PostOpFH   // resok
	Attr   PostOpAttr // resok
	DirWcc WccData
}

func (res *CreatedRes) Encode(w *xdr.Writer) {
	encodeStatus(w, res.Status)
	if res.Status == OK {
		res.FH.encode(w)
		res.Attr.encode(w)
	}
	res.DirWcc.encode(w)
}

func (res *CreatedRes) Decode(r *xdr.Reader) error {
	if res.Status = decodeStatus(r); res.Status == OK {
		res.FH.decode(r)
		res.Attr.decode(r)
	}
	res.DirWcc.decode(r)
	return r.Err()
}

// RenameArgs is RENAME3args.
type RenameArgs struct{ From, To DiropArgs }

func (a *RenameArgs) Encode(w *xdr.Writer) {
	a.From.encode(w)
	a.To.encode(w)
}

func (a *RenameArgs) Decode(r *xdr.Reader) error {
	a.From.decode(r)
	a.To.decode(r)
	return r.Err()
}

// RenameRes is RENAME3res.
type RenameRes struct {
	Status         Status
	FromWcc, ToWcc WccData
}

func (res *RenameRes) Encode(w *xdr.Writer) {
	encodeStatus(w, res.Status)
	res.FromWcc.encode(w)
	res.ToWcc.encode(w)
}

func (res *RenameRes) Decode(r *xdr.Reader) error {
	res.Status = decodeStatus(r)
	res.FromWcc.decode(r)
	res.ToWcc.decode(r)
	return r.Err()
}

// LinkArgs is LINK3args.
type LinkArgs struct {
	FH   []byte
	Link DiropArgs
}

func (a *LinkArgs) Encode(w *xdr.Writer) {
	w.Opaque(a.FH)
	a.Link.encode(w)
}

func (a *LinkArgs) Decode(r *xdr.Reader) error {
	a.FH = r.Opaque(MaxHandle)
	a.Link.decode(r)
	return r.Err()
}

// LinkRes is LINK3res.
type LinkRes struct {
	Status  Status
	Attr    PostOpAttr
	LinkWcc WccData
}

func (res *LinkRes) Encode(w *xdr.Writer) {
	encodeStatus(w, res.Status)
	res.Attr.encode(w)
	res.LinkWcc.encode(w)
}

func (res *LinkRes) Decode(r *xdr.Reader) error {
	res.Status = decodeStatus(r)
	res.Attr.decode(r)
	res.LinkWcc.decode(r)
	return r.Err()
}

// FsstatRes is FSSTAT3res.
type FsstatRes struct {
	Status                            Status
	Attr                              PostOpAttr
	TotalBytes, FreeBytes, AvailBytes uint64 // resok
	TotalFiles, FreeFiles, AvailFiles uint64 // resok
	Invarsec                          uint32 // resok
}

func (res *FsstatRes) Encode(w *xdr.Writer) {
	encodeStatus(w, res.Status)
	res.Attr.encode(w)
	if res.Status == OK {
		for _, v := range [...]uint64{res.TotalBytes, res.FreeBytes, res.AvailBytes, res.TotalFiles, res.FreeFiles, res.AvailFiles} {
			w.Uint64(v)
		}
		w.Uint32(res.Invarsec)
	}
}

func (res *FsstatRes) Decode(r *xdr.Reader) error {
	res.Status = decodeStatus(r)
	res.Attr.decode(r)
	if res.Status == OK {
		for _, p := range [...]*uint64{&res.TotalBytes, &res.FreeBytes, &res.AvailBytes, &res.TotalFiles, &res.FreeFiles, &res.AvailFiles} {
			*p = r.Uint64()
		}
		res.Invarsec = r.Uint32()
	}
	return r.Err()
}

// FSINFO properties.
const (
	FSFLink        = 0x01
	FSFSymlink     = 0x02
	FSFHomogeneous = 0x08
	FSFCanSetTime  = 0x10
)

// FsinfoRes is FSINFO3res.
type FsinfoRes struct {
	Status                Status
	Attr                  PostOpAttr
	Rtmax, Rtpref, Rtmult uint32 // resok, and all below
	Wtmax, Wtpref, Wtmult uint32
	Dtpref                uint32
	MaxFileSize           uint64
	TimeDelta             Time
	Properties            uint32
}

func (res *FsinfoRes) Encode(w *xdr.Writer) {
	encodeStatus(w, res.Status)
	res.Attr.encode(w)
	if res.Status == OK {
		for _, v := range [...]uint32{res.Rtmax, res.Rtpref, res.Rtmult, res.Wtmax, res.Wtpref, res.Wtmult, res.Dtpref} {
			w.Uint32(v)
		}
		w.Uint64(res.MaxFileSize)
		res.TimeDelta.encode(w)
		w.Uint32(res.Properties)
	}
}

func (res *FsinfoRes) Decode(r *xdr.Reader) error {
	res.Status = decodeStatus(r)
	res.Attr.decode(r)
	if res.Status == OK {
		for _, p := range [...]*uint32{&res.Rtmax, &res.Rtpref, &res.Rtmult, &res.Wtmax, &res.Wtpref, &res.Wtmult, &res.Dtpref} {
			*p = r.Uint32()
		}
		res.MaxFileSize = r.Uint64()
		res.TimeDelta.decode(r)
		res.Properties = r.Uint32()
	}
	return r.Err()
}

// PathconfRes is PATHCONF3res.
type PathconfRes struct {
	Status                                                    Status
	Attr                                                      PostOpAttr
	Linkmax, NameMax                                          uint32 // resok, and all below
	NoTrunc, ChownRestricted, CaseInsensitive, CasePreserving bool
}

func (res *PathconfRes) Encode(w *xdr.Writer) {
	encodeStatus(w, res.Status)
	res.Attr.encode(w)
	if res.Status == OK {
		w.Uint32(res.Linkmax)
		w.Uint32(res.NameMax)
		for _, v := range [...]bool{res.NoTrunc, res.ChownRestricted, res.CaseInsensitive, res.CasePreserving} {
			w.Bool(v)
		}
	}
}

func (res *PathconfRes) Decode(r *xdr.Reader) error {
	res.Status = decodeStatus(r)
	res.Attr.decode(r)
	if res.Status == OK {
		res.Linkmax = r.Uint32()
		res.NameMax = r.Uint32()
		for _, p := range [...]*bool{&res.NoTrunc, &res.ChownRestricted, &res.CaseInsensitive, &res.CasePreserving} {
			*p = r.Bool()
		}
	}
	return r.Err()
}

// CommitArgs is COMMIT3args.
type CommitArgs struct {
	FH     []byte
	Offset uint64
	Count  uint32
}

func (a *CommitArgs) Encode(w *xdr.Writer) {
	w.Opaque(a.FH)
	w.Uint64(a.Offset)
	w.Uint32(a.Count)
}

func (a *CommitArgs) Decode(r *xdr.Reader) error {
	a.FH = r.Opaque(MaxHandle)
	a.Offset = r.Uint64()
	a.Count = r.Uint32()
	return r.Err()
}

// CommitRes is COMMIT3res.
type CommitRes struct {
	Status Status
	Wcc    WccData
	Verf   [8]byte // resok
}

func (res *CommitRes) Encode(w *xdr.Writer) {
	encodeStatus(w, res.Status)
	res.Wcc.encode(w)
	if res.Status == OK {
		w.FixedOpaque(res.Verf[:])
	}
}

func (res *CommitRes) Decode(r *xdr.Reader) error {
	res.Status = decodeStatus(r)
	res.Wcc.decode(r)
	if res.Status == OK {
		copy(res.Verf[:], r.FixedOpaque(8))
	}
	return r.Err()
}
