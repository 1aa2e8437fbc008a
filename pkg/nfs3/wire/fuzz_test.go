package wire

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/rwxnfs/rwxnfs/internal/fuzzseed"
	"github.com/rwxnfs/rwxnfs/internal/rpctest"
	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// Every decoder is fuzzed with rpctest.FuzzCodec: no panic, no
// allocation beyond the input, and a canonical round trip.

// The READDIR codecs need to know which of the two procedures they are.
type readdirPlusArgs struct{ ReaddirArgs }

func (a *readdirPlusArgs) Decode(r *xdr.Reader) error { a.Plus = true; return a.ReaddirArgs.Decode(r) }

type readdirPlusRes struct{ ReaddirRes }

func (res *readdirPlusRes) Decode(r *xdr.Reader) error {
	res.Plus = true
	return res.ReaddirRes.Decode(r)
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
	"FuzzFattr":       {rpctest.Encode(&seedAttr)},
	"FuzzSattr":       {rpctest.Encode(&seedSet), rpctest.Encode(&Sattr{})},
	"FuzzFHArgs":      {rpctest.Encode(&FHArgs{FH: seedFH})},
	"FuzzGetattrRes":  {rpctest.Encode(&GetattrRes{Attr: seedAttr}), rpctest.Encode(&GetattrRes{Status: ErrStale})},
	"FuzzSetattrArgs": {rpctest.Encode(&SetattrArgs{FH: seedFH, Attr: seedSet, Check: true, Guard: Time{5, 6}})},
	"FuzzWccRes":      {rpctest.Encode(&WccRes{Wcc: seedWcc}), rpctest.Encode(&WccRes{Status: ErrAccess})},
	"FuzzDiropArgs":   {rpctest.Encode(&seedWhere)},
	"FuzzLookupRes":   {rpctest.Encode(&LookupRes{FH: seedFH, Attr: seedPost, DirAttr: seedPost}), rpctest.Encode(&LookupRes{Status: ErrNoEnt, DirAttr: seedPost})},
	"FuzzAccessArgs":  {rpctest.Encode(&AccessArgs{FH: seedFH, Access: 0x3f})},
	"FuzzAccessRes":   {rpctest.Encode(&AccessRes{Attr: seedPost, Access: 3})},
	"FuzzReadlinkRes": {rpctest.Encode(&ReadlinkRes{Attr: seedPost, Path: "../target"})},
	"FuzzReadArgs":    {rpctest.Encode(&ReadArgs{FH: seedFH, Offset: 4096, Count: 1 << 20})},
	"FuzzReadRes":     {rpctest.Encode(&ReadRes{Attr: seedPost, Count: 5, EOF: true, Data: []byte("hello")})},
	"FuzzWriteArgs":   {rpctest.Encode(&WriteArgs{FH: seedFH, Offset: 1, Count: 5, Stable: FileSync, Data: []byte("hello")})},
	"FuzzWriteRes":    {rpctest.Encode(&WriteRes{Wcc: seedWcc, Count: 5, Committed: DataSync, Verf: [8]byte{1, 2}})},
	"FuzzCreateArgs": {
		rpctest.Encode(&CreateArgs{Where: seedWhere, Mode: Guarded, Attr: seedSet}),
		rpctest.Encode(&CreateArgs{Where: seedWhere, Mode: Exclusive, Verf: [8]byte{'v', 'e', 'r', 'f'}}),
	},
	"FuzzMkdirArgs":   {rpctest.Encode(&MkdirArgs{Where: seedWhere, Attr: seedSet})},
	"FuzzSymlinkArgs": {rpctest.Encode(&SymlinkArgs{Where: seedWhere, Target: "a/b/c"})},
	"FuzzMknodArgs": {
		rpctest.Encode(&MknodArgs{Where: seedWhere, Type: TypeChr, Attr: seedSet, Spec: SpecData{1, 3}}),
		rpctest.Encode(&MknodArgs{Where: seedWhere, Type: TypeFifo}),
		rpctest.Encode(&MknodArgs{Where: seedWhere, Type: TypeReg}),
	},
	"FuzzCreatedRes":      {rpctest.Encode(&CreatedRes{FH: PostOpFH{Set: true, FH: seedFH}, Attr: seedPost, DirWcc: seedWcc})},
	"FuzzRenameArgs":      {rpctest.Encode(&RenameArgs{From: seedWhere, To: DiropArgs{Dir: seedFH, Name: "new"}})},
	"FuzzRenameRes":       {rpctest.Encode(&RenameRes{FromWcc: seedWcc, ToWcc: seedWcc})},
	"FuzzLinkArgs":        {rpctest.Encode(&LinkArgs{FH: seedFH, Link: seedWhere})},
	"FuzzLinkRes":         {rpctest.Encode(&LinkRes{Attr: seedPost, LinkWcc: seedWcc})},
	"FuzzReaddirArgs":     {rpctest.Encode(&ReaddirArgs{Dir: seedFH, Cookie: 12, Count: 4096})},
	"FuzzReaddirPlusArgs": {rpctest.Encode(&readdirPlusArgs{ReaddirArgs{Plus: true, Dir: seedFH, DirCount: 1024, Count: 8192}})},
	"FuzzReaddirRes":      {rpctest.Encode(&ReaddirRes{DirAttr: seedPost, Entries: []Entry{{FileID: 1, Name: []byte("."), Cookie: 1}, {FileID: 9, Name: []byte("file"), Cookie: 77}}, EOF: true})},
	"FuzzReaddirPlusRes": {rpctest.Encode(&readdirPlusRes{ReaddirRes{Plus: true, DirAttr: seedPost,
		Entries: []Entry{{FileID: 9, Name: []byte("file"), Cookie: 77, Attr: seedPost, FH: PostOpFH{Set: true, FH: seedFH}}, {FileID: 3, Name: []byte("gone"), Cookie: 80}}}})},
	"FuzzFsstatRes":   {rpctest.Encode(&FsstatRes{Attr: seedPost, TotalBytes: 1 << 30, FreeBytes: 1 << 20, AvailBytes: 1 << 20, TotalFiles: 100, FreeFiles: 7, AvailFiles: 7})},
	"FuzzFsinfoRes":   {rpctest.Encode(&FsinfoRes{Attr: seedPost, Rtmax: 1 << 20, Wtmax: 1 << 20, MaxFileSize: 1<<63 - 1, TimeDelta: Time{0, 1}, Properties: FSFLink})},
	"FuzzPathconfRes": {rpctest.Encode(&PathconfRes{Attr: seedPost, Linkmax: 65000, NameMax: 255, NoTrunc: true, CasePreserving: true})},
	"FuzzCommitArgs":  {rpctest.Encode(&CommitArgs{FH: seedFH, Offset: 0, Count: 0})},
	"FuzzCommitRes":   {rpctest.Encode(&CommitRes{Wcc: seedWcc, Verf: [8]byte{9}})},
	"FuzzDirPath":     {rpctest.Encode(&DirPath{Path: "/volumes/default"})},
	"FuzzMntRes":      {rpctest.Encode(&MntRes{FH: seedFH, Flavors: []uint32{1}}), rpctest.Encode(&MntRes{Status: MountErrAccess})},
	"FuzzMountList":   {rpctest.Encode(&MountList{{Host: "10.0.0.2", Dir: "/volumes/a"}})},
	"FuzzExports":     {rpctest.Encode(&Exports{{Dir: "/volumes/a", Groups: []string{"10.0.0.0/24"}}, {Dir: "/volumes/b", Groups: []string{}}})},
}

func seeds(f *testing.F) [][]byte {
	s, ok := fuzzSeeds[f.Name()]
	if !ok {
		f.Fatalf("no seeds for %s", f.Name())
	}
	return s
}

func FuzzFattr(f *testing.F)           { rpctest.FuzzCodec[Fattr](f, seeds(f)) }
func FuzzSattr(f *testing.F)           { rpctest.FuzzCodec[Sattr](f, seeds(f)) }
func FuzzFHArgs(f *testing.F)          { rpctest.FuzzCodec[FHArgs](f, seeds(f)) }
func FuzzGetattrRes(f *testing.F)      { rpctest.FuzzCodec[GetattrRes](f, seeds(f)) }
func FuzzSetattrArgs(f *testing.F)     { rpctest.FuzzCodec[SetattrArgs](f, seeds(f)) }
func FuzzWccRes(f *testing.F)          { rpctest.FuzzCodec[WccRes](f, seeds(f)) }
func FuzzDiropArgs(f *testing.F)       { rpctest.FuzzCodec[DiropArgs](f, seeds(f)) }
func FuzzLookupRes(f *testing.F)       { rpctest.FuzzCodec[LookupRes](f, seeds(f)) }
func FuzzAccessArgs(f *testing.F)      { rpctest.FuzzCodec[AccessArgs](f, seeds(f)) }
func FuzzAccessRes(f *testing.F)       { rpctest.FuzzCodec[AccessRes](f, seeds(f)) }
func FuzzReadlinkRes(f *testing.F)     { rpctest.FuzzCodec[ReadlinkRes](f, seeds(f)) }
func FuzzReadArgs(f *testing.F)        { rpctest.FuzzCodec[ReadArgs](f, seeds(f)) }
func FuzzReadRes(f *testing.F)         { rpctest.FuzzCodec[ReadRes](f, seeds(f)) }
func FuzzWriteArgs(f *testing.F)       { rpctest.FuzzCodec[WriteArgs](f, seeds(f)) }
func FuzzWriteRes(f *testing.F)        { rpctest.FuzzCodec[WriteRes](f, seeds(f)) }
func FuzzCreateArgs(f *testing.F)      { rpctest.FuzzCodec[CreateArgs](f, seeds(f)) }
func FuzzMkdirArgs(f *testing.F)       { rpctest.FuzzCodec[MkdirArgs](f, seeds(f)) }
func FuzzSymlinkArgs(f *testing.F)     { rpctest.FuzzCodec[SymlinkArgs](f, seeds(f)) }
func FuzzMknodArgs(f *testing.F)       { rpctest.FuzzCodec[MknodArgs](f, seeds(f)) }
func FuzzCreatedRes(f *testing.F)      { rpctest.FuzzCodec[CreatedRes](f, seeds(f)) }
func FuzzRenameArgs(f *testing.F)      { rpctest.FuzzCodec[RenameArgs](f, seeds(f)) }
func FuzzRenameRes(f *testing.F)       { rpctest.FuzzCodec[RenameRes](f, seeds(f)) }
func FuzzLinkArgs(f *testing.F)        { rpctest.FuzzCodec[LinkArgs](f, seeds(f)) }
func FuzzLinkRes(f *testing.F)         { rpctest.FuzzCodec[LinkRes](f, seeds(f)) }
func FuzzReaddirArgs(f *testing.F)     { rpctest.FuzzCodec[ReaddirArgs](f, seeds(f)) }
func FuzzReaddirPlusArgs(f *testing.F) { rpctest.FuzzCodec[readdirPlusArgs](f, seeds(f)) }
func FuzzReaddirRes(f *testing.F)      { rpctest.FuzzCodec[ReaddirRes](f, seeds(f)) }
func FuzzReaddirPlusRes(f *testing.F)  { rpctest.FuzzCodec[readdirPlusRes](f, seeds(f)) }
func FuzzFsstatRes(f *testing.F)       { rpctest.FuzzCodec[FsstatRes](f, seeds(f)) }
func FuzzFsinfoRes(f *testing.F)       { rpctest.FuzzCodec[FsinfoRes](f, seeds(f)) }
func FuzzPathconfRes(f *testing.F)     { rpctest.FuzzCodec[PathconfRes](f, seeds(f)) }
func FuzzCommitArgs(f *testing.F)      { rpctest.FuzzCodec[CommitArgs](f, seeds(f)) }
func FuzzCommitRes(f *testing.F)       { rpctest.FuzzCodec[CommitRes](f, seeds(f)) }
func FuzzDirPath(f *testing.F)         { rpctest.FuzzCodec[DirPath](f, seeds(f)) }
func FuzzMntRes(f *testing.F)          { rpctest.FuzzCodec[MntRes](f, seeds(f)) }
func FuzzMountList(f *testing.F)       { rpctest.FuzzCodec[MountList](f, seeds(f)) }
func FuzzExports(f *testing.F)         { rpctest.FuzzCodec[Exports](f, seeds(f)) }

// The decoders refuse what RFC 1813 does not allow, rather than guess.
func TestDecodersRefuse(t *testing.T) {
	w := xdr.NewWriter(64)
	seedWhere.encode(w)
	w.Uint32(3) // createhow3 has no mode 3
	if err := (&CreateArgs{}).Decode(xdr.NewReader(w.Bytes())); err == nil {
		t.Error("CREATE with mode 3 decoded")
	}
	bad := rpctest.Encode(&WriteArgs{FH: seedFH, Stable: 3})
	if err := (&WriteArgs{}).Decode(xdr.NewReader(bad)); err == nil {
		t.Error("WRITE with stable_how 3 decoded")
	}
	big := rpctest.Encode(&WriteArgs{FH: seedFH, Data: make([]byte, MaxWriteData+4)})
	if err := (&WriteArgs{}).Decode(xdr.NewReader(big)); err == nil {
		t.Error("WRITE with more data than wtmax decoded")
	}
	for _, st := range []SetTime{{How: 3}, {How: SetToClientTime, Time: Time{1, 1e9}}} {
		s := Sattr{Atime: st}
		if err := (&Sattr{}).Decode(xdr.NewReader(rpctest.Encode(&s))); err == nil {
			t.Errorf("sattr3 with set_atime %+v decoded", st)
		}
	}
	long := rpctest.Encode(&DirPath{Path: string(bytes.Repeat([]byte{'a'}, MaxMountPath+2))})
	if err := (&DirPath{}).Decode(xdr.NewReader(long)); err == nil {
		t.Error("a dirpath two bytes past MNTPATHLEN decoded")
	}
	var s Sattr
	if s.Decode(xdr.NewReader(rpctest.Encode(&Sattr{SetMode: true, Mode: 0o170777}))); s.Mode != 0o777 {
		t.Errorf("mode kept file-type bits: %o", s.Mode)
	}
}

// A READ reply whose header is written after its data is the same bytes
// as one encoded in order.
func TestHeadersWrittenAfterData(t *testing.T) {
	res := ReadRes{Attr: seedPost, Count: 5, EOF: true, Data: []byte("hello")}
	w := xdr.NewWriter(0)
	w.Uint32(0xfeedface) // whatever came before
	start := w.Len()
	w.Grow(ReadOKHeaderSize)
	copy(w.Grow(len(res.Data)), res.Data)
	res.EncodeOKHeaderAt(w, start)
	want := append([]byte{0xfe, 0xed, 0xfa, 0xce}, rpctest.Encode(&res)...)
	if !bytes.Equal(w.Bytes(), want) {
		t.Fatalf("got  %x\nwant %x", w.Bytes(), want)
	}
	// So is a READDIR reply whose head is written after its entries.
	dres := ReaddirRes{DirAttr: seedPost, Verf: [8]byte{1}, Entries: []Entry{{FileID: 1, Name: []byte("x"), Cookie: 2}}, EOF: true}
	w = xdr.NewWriter(0)
	w.Grow(ReaddirOKHeadSize)
	dres.Entries[0].Encode(w, false)
	dres.EncodeTail(w)
	dres.EncodeOKHeadAt(w, 0)
	if want := rpctest.Encode(&dres); !bytes.Equal(w.Bytes(), want) {
		t.Fatalf("READDIR got  %x\nwant %x", w.Bytes(), want)
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
