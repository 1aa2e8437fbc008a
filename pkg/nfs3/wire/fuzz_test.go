package wire

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"

	"github.com/rwxnfs/rwxnfs/internal/fuzzseed"
	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// Every decoder is fuzzed: whatever the input, decoding must not panic
// or allocate more than the input allows, and whatever decodes must
// encode to exactly the bytes consumed (XDR is canonical, padding aside)
// and decode again to the same value.

type codec interface {
	Decode(*xdr.Reader) error
	Encode(*xdr.Writer)
}

// The READDIR codecs need to know which of the two procedures they are.
type readdirPlusArgs struct{ ReaddirArgs }

func (a *readdirPlusArgs) Decode(r *xdr.Reader) error { a.Plus = true; return a.ReaddirArgs.Decode(r) }

type readdirPlusRes struct{ ReaddirRes }

func (res *readdirPlusRes) Decode(r *xdr.Reader) error {
	res.Plus = true
	return res.ReaddirRes.Decode(r)
}

func enc(c codec) []byte {
	w := xdr.NewWriter(64)
	c.Encode(w)
	return w.Bytes()
}

var (
	seedFH   = []byte("0123456789abcdefghijklmnopqrstuv")
	seedAttr = Fattr{Type: TypeReg, Mode: 0o644, Nlink: 1, UID: 1000, GID: 1000, Size: 5, Used: 4096,
		FSID: 7, FileID: 42, Atime: Time{1, 2}, Mtime: Time{3, 4}, Ctime: Time{5, 6}}
	seedPost = PostOpAttr{Set: true, Attr: seedAttr}
	seedWcc  = WccData{Before: PreOpAttr{Set: true, Attr: WccAttr{Size: 5, Mtime: Time{3, 4}, Ctime: Time{5, 6}}}, After: seedPost}
	seedSet  = Sattr{SetMode: true, Mode: 0o640, SetSize: true, Size: 3, Atime: SetTime{How: SetToServerTime},
		Mtime: SetTime{How: SetToClientTime, Time: Time{9, 10}}}
	seedWhere = DiropArgs{Dir: seedFH, Name: "file"}
)

// fuzzSeeds are each target's seeds, also committed under testdata/fuzz
// (see TestWriteFuzzSeeds).
var fuzzSeeds = map[string][][]byte{
	"FuzzFattr":       {enc(&seedAttr)},
	"FuzzSattr":       {enc(&seedSet), enc(&Sattr{})},
	"FuzzFHArgs":      {enc(&FHArgs{FH: seedFH})},
	"FuzzGetattrRes":  {enc(&GetattrRes{Attr: seedAttr}), enc(&GetattrRes{Status: ErrStale})},
	"FuzzSetattrArgs": {enc(&SetattrArgs{FH: seedFH, Attr: seedSet, Check: true, Guard: Time{5, 6}})},
	"FuzzWccRes":      {enc(&WccRes{Wcc: seedWcc}), enc(&WccRes{Status: ErrAccess})},
	"FuzzDiropArgs":   {enc(&seedWhere)},
	"FuzzLookupRes":   {enc(&LookupRes{FH: seedFH, Attr: seedPost, DirAttr: seedPost}), enc(&LookupRes{Status: ErrNoEnt, DirAttr: seedPost})},
	"FuzzAccessArgs":  {enc(&AccessArgs{FH: seedFH, Access: 0x3f})},
	"FuzzAccessRes":   {enc(&AccessRes{Attr: seedPost, Access: 3})},
	"FuzzReadlinkRes": {enc(&ReadlinkRes{Attr: seedPost, Path: "../target"})},
	"FuzzReadArgs":    {enc(&ReadArgs{FH: seedFH, Offset: 4096, Count: 1 << 20})},
	"FuzzReadRes":     {enc(&ReadRes{Attr: seedPost, Count: 5, EOF: true, Data: []byte("hello")})},
	"FuzzWriteArgs":   {enc(&WriteArgs{FH: seedFH, Offset: 1, Count: 5, Stable: FileSync, Data: []byte("hello")})},
	"FuzzWriteRes":    {enc(&WriteRes{Wcc: seedWcc, Count: 5, Committed: DataSync, Verf: [8]byte{1, 2}})},
	"FuzzCreateArgs": {
		enc(&CreateArgs{Where: seedWhere, Mode: Guarded, Attr: seedSet}),
		enc(&CreateArgs{Where: seedWhere, Mode: Exclusive, Verf: [8]byte{'v', 'e', 'r', 'f'}}),
	},
	"FuzzMkdirArgs":   {enc(&MkdirArgs{Where: seedWhere, Attr: seedSet})},
	"FuzzSymlinkArgs": {enc(&SymlinkArgs{Where: seedWhere, Target: "a/b/c"})},
	"FuzzMknodArgs": {
		enc(&MknodArgs{Where: seedWhere, Type: TypeChr, Attr: seedSet, Spec: SpecData{1, 3}}),
		enc(&MknodArgs{Where: seedWhere, Type: TypeFifo}),
		enc(&MknodArgs{Where: seedWhere, Type: TypeReg}),
	},
	"FuzzCreatedRes":      {enc(&CreatedRes{FH: PostOpFH{Set: true, FH: seedFH}, Attr: seedPost, DirWcc: seedWcc})},
	"FuzzRenameArgs":      {enc(&RenameArgs{From: seedWhere, To: DiropArgs{Dir: seedFH, Name: "new"}})},
	"FuzzRenameRes":       {enc(&RenameRes{FromWcc: seedWcc, ToWcc: seedWcc})},
	"FuzzLinkArgs":        {enc(&LinkArgs{FH: seedFH, Link: seedWhere})},
	"FuzzLinkRes":         {enc(&LinkRes{Attr: seedPost, LinkWcc: seedWcc})},
	"FuzzReaddirArgs":     {enc(&ReaddirArgs{Dir: seedFH, Cookie: 12, Count: 4096})},
	"FuzzReaddirPlusArgs": {enc(&readdirPlusArgs{ReaddirArgs{Plus: true, Dir: seedFH, DirCount: 1024, Count: 8192}})},
	"FuzzReaddirRes":      {enc(&ReaddirRes{DirAttr: seedPost, Entries: []Entry{{FileID: 1, Name: ".", Cookie: 1}, {FileID: 9, Name: "file", Cookie: 77}}, EOF: true})},
	"FuzzReaddirPlusRes": {enc(&readdirPlusRes{ReaddirRes{Plus: true, DirAttr: seedPost,
		Entries: []Entry{{FileID: 9, Name: "file", Cookie: 77, Attr: seedPost, FH: PostOpFH{Set: true, FH: seedFH}}, {FileID: 3, Name: "gone", Cookie: 80}}}})},
	"FuzzFsstatRes":   {enc(&FsstatRes{Attr: seedPost, TotalBytes: 1 << 30, FreeBytes: 1 << 20, AvailBytes: 1 << 20, TotalFiles: 100, FreeFiles: 7, AvailFiles: 7})},
	"FuzzFsinfoRes":   {enc(&FsinfoRes{Attr: seedPost, Rtmax: 1 << 20, Wtmax: 1 << 20, MaxFileSize: 1<<63 - 1, TimeDelta: Time{0, 1}, Properties: FSFLink})},
	"FuzzPathconfRes": {enc(&PathconfRes{Attr: seedPost, Linkmax: 65000, NameMax: 255, NoTrunc: true, CasePreserving: true})},
	"FuzzCommitArgs":  {enc(&CommitArgs{FH: seedFH, Offset: 0, Count: 0})},
	"FuzzCommitRes":   {enc(&CommitRes{Wcc: seedWcc, Verf: [8]byte{9}})},
	"FuzzDirPath":     {enc(&DirPath{Path: "/volumes/default"})},
	"FuzzMntRes":      {enc(&MntRes{FH: seedFH, Flavors: []uint32{1}}), enc(&MntRes{Status: MountErrAccess})},
	"FuzzMountList":   {enc(&MountList{{Host: "10.0.0.2", Dir: "/volumes/a"}})},
	"FuzzExports":     {enc(&Exports{{Dir: "/volumes/a", Groups: []string{"10.0.0.0/24"}}, {Dir: "/volumes/b", Groups: []string{}}})},
}

func fuzzCodec[T any, P interface {
	*T
	codec
}](f *testing.F) {
	seeds, ok := fuzzSeeds[f.Name()]
	if !ok {
		f.Fatalf("no seeds for %s", f.Name())
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var v T
		r := xdr.NewReader(b)
		if P(&v).Decode(r) != nil {
			return
		}
		out := enc(P(&v))
		if len(out) != r.Offset() {
			t.Fatalf("decoded %d bytes, encoded %d", r.Offset(), len(out))
		}
		var v2 T
		if err := P(&v2).Decode(xdr.NewReader(out)); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !reflect.DeepEqual(v, v2) {
			t.Fatalf("round trip:\n%+v\n%+v", v, v2)
		}
	})
}

func FuzzFattr(f *testing.F)           { fuzzCodec[Fattr](f) }
func FuzzSattr(f *testing.F)           { fuzzCodec[Sattr](f) }
func FuzzFHArgs(f *testing.F)          { fuzzCodec[FHArgs](f) }
func FuzzGetattrRes(f *testing.F)      { fuzzCodec[GetattrRes](f) }
func FuzzSetattrArgs(f *testing.F)     { fuzzCodec[SetattrArgs](f) }
func FuzzWccRes(f *testing.F)          { fuzzCodec[WccRes](f) }
func FuzzDiropArgs(f *testing.F)       { fuzzCodec[DiropArgs](f) }
func FuzzLookupRes(f *testing.F)       { fuzzCodec[LookupRes](f) }
func FuzzAccessArgs(f *testing.F)      { fuzzCodec[AccessArgs](f) }
func FuzzAccessRes(f *testing.F)       { fuzzCodec[AccessRes](f) }
func FuzzReadlinkRes(f *testing.F)     { fuzzCodec[ReadlinkRes](f) }
func FuzzReadArgs(f *testing.F)        { fuzzCodec[ReadArgs](f) }
func FuzzReadRes(f *testing.F)         { fuzzCodec[ReadRes](f) }
func FuzzWriteArgs(f *testing.F)       { fuzzCodec[WriteArgs](f) }
func FuzzWriteRes(f *testing.F)        { fuzzCodec[WriteRes](f) }
func FuzzCreateArgs(f *testing.F)      { fuzzCodec[CreateArgs](f) }
func FuzzMkdirArgs(f *testing.F)       { fuzzCodec[MkdirArgs](f) }
func FuzzSymlinkArgs(f *testing.F)     { fuzzCodec[SymlinkArgs](f) }
func FuzzMknodArgs(f *testing.F)       { fuzzCodec[MknodArgs](f) }
func FuzzCreatedRes(f *testing.F)      { fuzzCodec[CreatedRes](f) }
func FuzzRenameArgs(f *testing.F)      { fuzzCodec[RenameArgs](f) }
func FuzzRenameRes(f *testing.F)       { fuzzCodec[RenameRes](f) }
func FuzzLinkArgs(f *testing.F)        { fuzzCodec[LinkArgs](f) }
func FuzzLinkRes(f *testing.F)         { fuzzCodec[LinkRes](f) }
func FuzzReaddirArgs(f *testing.F)     { fuzzCodec[ReaddirArgs](f) }
func FuzzReaddirPlusArgs(f *testing.F) { fuzzCodec[readdirPlusArgs](f) }
func FuzzReaddirRes(f *testing.F)      { fuzzCodec[ReaddirRes](f) }
func FuzzReaddirPlusRes(f *testing.F)  { fuzzCodec[readdirPlusRes](f) }
func FuzzFsstatRes(f *testing.F)       { fuzzCodec[FsstatRes](f) }
func FuzzFsinfoRes(f *testing.F)       { fuzzCodec[FsinfoRes](f) }
func FuzzPathconfRes(f *testing.F)     { fuzzCodec[PathconfRes](f) }
func FuzzCommitArgs(f *testing.F)      { fuzzCodec[CommitArgs](f) }
func FuzzCommitRes(f *testing.F)       { fuzzCodec[CommitRes](f) }
func FuzzDirPath(f *testing.F)         { fuzzCodec[DirPath](f) }
func FuzzMntRes(f *testing.F)          { fuzzCodec[MntRes](f) }
func FuzzMountList(f *testing.F)       { fuzzCodec[MountList](f) }
func FuzzExports(f *testing.F)         { fuzzCodec[Exports](f) }

// The decoders refuse what RFC 1813 does not allow, rather than guess.
func TestDecodersRefuse(t *testing.T) {
	w := xdr.NewWriter(64)
	seedWhere.encode(w)
	w.Uint32(3) // createhow3 has no mode 3
	if err := (&CreateArgs{}).Decode(xdr.NewReader(w.Bytes())); err == nil {
		t.Error("CREATE with mode 3 decoded")
	}
	bad := enc(&WriteArgs{FH: seedFH, Stable: 3})
	if err := (&WriteArgs{}).Decode(xdr.NewReader(bad)); err == nil {
		t.Error("WRITE with stable_how 3 decoded")
	}
	big := enc(&WriteArgs{FH: seedFH, Data: make([]byte, MaxWriteData+4)})
	if err := (&WriteArgs{}).Decode(xdr.NewReader(big)); err == nil {
		t.Error("WRITE with more data than wtmax decoded")
	}
	for _, st := range []SetTime{{How: 3}, {How: SetToClientTime, Time: Time{1, 1e9}}} {
		s := Sattr{Atime: st}
		if err := (&Sattr{}).Decode(xdr.NewReader(enc(&s))); err == nil {
			t.Errorf("sattr3 with set_atime %+v decoded", st)
		}
	}
	long := enc(&DirPath{Path: string(bytes.Repeat([]byte{'a'}, MaxMountPath+2))})
	if err := (&DirPath{}).Decode(xdr.NewReader(long)); err == nil {
		t.Error("a dirpath two bytes past MNTPATHLEN decoded")
	}
	var s Sattr
	if s.Decode(xdr.NewReader(enc(&Sattr{SetMode: true, Mode: 0o170777}))); s.Mode != 0o777 {
		t.Errorf("mode kept file-type bits: %o", s.Mode)
	}
}

// A READ reply whose header is written after its data is the same bytes
// as one encoded in order.
func TestReadHeaderAt(t *testing.T) {
	res := ReadRes{Attr: seedPost, Count: 5, EOF: true, Data: []byte("hello")}
	w := xdr.NewWriter(0)
	w.Uint32(0xfeedface) // whatever came before
	start := w.Len()
	w.Grow(ReadOKHeaderSize)
	copy(w.Grow(len(res.Data)), res.Data)
	res.EncodeOKHeaderAt(w, start)
	want := append([]byte{0xfe, 0xed, 0xfa, 0xce}, enc(&res)...)
	if !bytes.Equal(w.Bytes(), want) {
		t.Fatalf("got  %x\nwant %x", w.Bytes(), want)
	}
	// Entry.Size is the encoded size.
	for _, plus := range []bool{false, true} {
		for _, e := range []Entry{{Name: "a"}, {Name: "four", Attr: seedPost, FH: PostOpFH{Set: true, FH: []byte("xyz")}}} {
			w := xdr.NewWriter(0)
			e.Encode(w, plus)
			if w.Len() != e.Size(plus) {
				t.Errorf("entry %q plus=%v: size %d, encoded %d", e.Name, plus, e.Size(plus), w.Len())
			}
		}
	}
}

// TestWriteFuzzSeeds rewrites testdata/fuzz when WIRE_WRITE_SEEDS is set.
func TestWriteFuzzSeeds(t *testing.T) {
	write := fuzzseed.Writer(t, "WIRE_WRITE_SEEDS")
	for name, seeds := range fuzzSeeds {
		for i, s := range seeds {
			write(name, i, fmt.Sprintf("[]byte(%q)\n", s))
		}
	}
}
