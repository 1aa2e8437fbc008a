package wire

import "github.com/rwxnfs/rwxnfs/pkg/xdr"

// ReaddirArgs is READDIR3args, and READDIRPLUS3args when Plus: Count is
// the reply's size limit (maxcount), DirCount READDIRPLUS's dircount.
type ReaddirArgs struct {
	Plus     bool
	Dir      []byte
	Cookie   uint64
	Verf     [8]byte
	DirCount uint32 // READDIRPLUS only
	Count    uint32
}

func (a *ReaddirArgs) Encode(w *xdr.Writer) {
	w.Opaque(a.Dir)
	w.Uint64(a.Cookie)
	w.FixedOpaque(a.Verf[:])
	if a.Plus {
		w.Uint32(a.DirCount)
	}
	w.Uint32(a.Count)
}

// Decode reads the arguments of READDIR, or of READDIRPLUS if a.Plus is
// set beforehand.
func (a *ReaddirArgs) Decode(r *xdr.Reader) error {
	a.Dir = r.Opaque(MaxHandle)
	a.Cookie = r.Uint64()
	copy(a.Verf[:], r.FixedOpaque(8))
	if a.Plus {
		a.DirCount = r.Uint32()
	}
	a.Count = r.Uint32()
	return r.Err()
}

// Entry is entry3, and entryplus3 when the list it is in is READDIRPLUS's
// (then Attr and FH are sent). Name is bytes, not a string, so a server
// can encode a name straight from its directory buffer.
type Entry struct {
	FileID uint64
	Name   []byte
	Cookie uint64
	Attr   PostOpAttr // READDIRPLUS
	FH     PostOpFH   // READDIRPLUS
}

// Encode appends the entry to a list, its "value follows" flag first.
func (e *Entry) Encode(w *xdr.Writer, plus bool) {
	w.Bool(true)
	w.Uint64(e.FileID)
	w.Opaque(e.Name)
	w.Uint64(e.Cookie)
	if plus {
		e.Attr.encode(w)
		e.FH.encode(w)
	}
}

func (e *Entry) decode(r *xdr.Reader, plus bool) {
	e.FileID = r.Uint64()
	e.Name = r.Opaque(MaxName)
	e.Cookie = r.Uint64()
	if plus {
		e.Attr.decode(r)
		e.FH.decode(r)
	}
}

// ReaddirRes is READDIR3res, and READDIRPLUS3res when Plus. A server
// that fills a reply entry by entry encodes it in three steps:
// EncodeHead, Entry.Encode for each entry, EncodeTail.
type ReaddirRes struct {
	Plus    bool
	Status  Status
	DirAttr PostOpAttr
	Verf    [8]byte // resok, and below
	Entries []Entry
	EOF     bool
}

// ReaddirOKSize is the size of a successful reply with directory
// attributes and no entries.
const ReaddirOKSize = 4 + 4 + FattrSize + 8 + 4 + 4

func (res *ReaddirRes) Encode(w *xdr.Writer) {
	res.EncodeHead(w)
	if res.Status != OK {
		return
	}
	for i := range res.Entries {
		res.Entries[i].Encode(w, res.Plus)
	}
	res.EncodeTail(w)
}

// EncodeHead appends everything before the entries (all of a failure).
func (res *ReaddirRes) EncodeHead(w *xdr.Writer) {
	encodeStatus(w, res.Status)
	res.DirAttr.encode(w)
	if res.Status == OK {
		w.FixedOpaque(res.Verf[:])
	}
}

// ReaddirOKHeadSize is the size of what EncodeHead writes for a
// successful reply with directory attributes.
const ReaddirOKHeadSize = 4 + 4 + FattrSize + 8

// EncodeOKHeadAt writes the head of a successful reply with directory
// attributes into the ReaddirOKHeadSize bytes at off, for a server that
// encoded the entries behind them before it knew those attributes.
func (res *ReaddirRes) EncodeOKHeadAt(w *xdr.Writer, off int) {
	win := w.Window(off, ReaddirOKHeadSize)
	encodeStatus(&win, OK)
	res.DirAttr.encode(&win)
	win.FixedOpaque(res.Verf[:])
	if !win.Filled() {
		panic("wire: READDIR head written without attributes")
	}
}

// EncodeTail ends the list of entries and says whether it reached the
// end of the directory.
func (res *ReaddirRes) EncodeTail(w *xdr.Writer) {
	w.Bool(false)
	w.Bool(res.EOF)
}

// Decode reads the results of READDIR, or of READDIRPLUS if res.Plus is
// set beforehand.
func (res *ReaddirRes) Decode(r *xdr.Reader) error {
	res.Status = decodeStatus(r)
	res.DirAttr.decode(r)
	if res.Status != OK {
		return r.Err()
	}
	copy(res.Verf[:], r.FixedOpaque(8))
	res.Entries = res.Entries[:0]
	for r.Bool() && r.Err() == nil {
		var e Entry
		e.decode(r, res.Plus)
		res.Entries = append(res.Entries, e)
	}
	res.EOF = r.Bool()
	return r.Err()
}
