package nfs3

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rwxnfs/rwxnfs/internal/fuzzseed"
	"github.com/rwxnfs/rwxnfs/internal/rpctest"
	"github.com/rwxnfs/rwxnfs/pkg/exports"
	"github.com/rwxnfs/rwxnfs/pkg/nfs3/wire"
	"github.com/rwxnfs/rwxnfs/pkg/rpc"
	"github.com/rwxnfs/rwxnfs/pkg/volfs"
	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// The NFS and MOUNT fuzzers run every procedure with arbitrary arguments
// against a real export table on a temporary directory. Handles are what
// the fuzzer cannot guess (they are sealed), so the arguments may carry
// markers that are replaced by the XDR of a real handle before the call:
//
//	"\xffFHR"  the volume's root directory
//	"\xffFHF"  a regular file in it ("file")
//	"\xffFHD"  a subdirectory ("dir")
//	"\xffFHX"  a well-formed handle of a volume that does not exist
//
// Whatever the arguments, a call must not panic, must answer either
// results or GARBAGE_ARGS (PROC_UNAVAIL past the last procedure), never
// SYSTEM_ERR; its results must have exactly the shape RFC 1813 gives the
// procedure for the status they carry; and arguments cut anywhere short
// of what the call consumed must be GARBAGE_ARGS, which also shows that
// every procedure decodes all of its arguments before it acts on them.

var markers = []string{"\xffFHR", "\xffFHF", "\xffFHD", "\xffFHX"}

type fuzzEnv struct {
	t     *exports.Table
	v     *exports.Volume
	nfs   *Handler
	mount *Mount
}

func newFuzzEnv(tb testing.TB, dir string) *fuzzEnv {
	t, err := exports.Open(exports.Config{Root: dir, Log: rpctest.Logger(tb)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { t.Close() })
	v, err := t.Create("fuzz", exports.Options{Squash: exports.SquashRoot, AnonUID: exports.Nobody, AnonGID: exports.Nobody})
	if err != nil {
		tb.Fatal(err)
	}
	fs := volfs.New(t, rpctest.Logger(tb))
	return &fuzzEnv{t: t, v: v, nfs: NewHandler(fs, rpctest.Logger(tb), nil), mount: &Mount{FS: fs}}
}

// handles restores the volume's fixtures (earlier calls may have removed,
// renamed or chmodded them) and returns the handle of each marker.
func (e *fuzzEnv) handles(tb testing.TB) [][]byte {
	root := e.v.Dir()
	os.Chmod(root, 0o777)
	var st unix.Stat_t
	if unix.Lstat(filepath.Join(root, "file"), &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		os.RemoveAll(filepath.Join(root, "file"))
		os.WriteFile(filepath.Join(root, "file"), []byte("some data\n"), 0o666)
	}
	if unix.Lstat(filepath.Join(root, "dir"), &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		os.RemoveAll(filepath.Join(root, "dir"))
		os.Mkdir(filepath.Join(root, "dir"), 0o777)
	}
	os.Chmod(filepath.Join(root, "file"), 0o666)
	os.Chmod(filepath.Join(root, "dir"), 0o777)
	hs := [][]byte{e.v.Root().Handle}
	for _, name := range []string{"file", "dir"} {
		h, err := e.t.HandleAt(e.v, e.v.Root().FD(), name)
		if err != nil {
			tb.Fatal(err)
		}
		hs = append(hs, h)
	}
	foreign := bytes.Clone(e.v.Root().Handle)
	foreign[2] ^= 0xff // another fsid
	return append(hs, foreign)
}

func substitute(args []byte, hs [][]byte) []byte {
	for i, m := range markers {
		w := xdr.NewWriter(72)
		w.Opaque(hs[i])
		args = bytes.ReplaceAll(args, []byte(m), w.Bytes())
	}
	return args
}

// creds: AUTH_NONE, an ordinary user, root (squashed), a user in many groups.
func credFor(sel uint8) *rpc.AuthSysCred {
	switch sel % 4 {
	case 1:
		return &rpc.AuthSysCred{Machine: "fuzz", UID: 1000, GID: 1000}
	case 2:
		return &rpc.AuthSysCred{Machine: "fuzz", UID: 0, GID: 0}
	case 3:
		return &rpc.AuthSysCred{Machine: "fuzz", UID: 2000, GID: 2000, GIDs: []uint32{0, 1000, 65534}}
	}
	return nil
}

func request(prog, vers, proc uint32, sys *rpc.AuthSysCred, args []byte) *rpc.Request {
	return &rpc.Request{
		CallHeader: rpc.CallHeader{Prog: prog, Vers: vers, Proc: proc},
		Args:       xdr.NewReader(args),
		Sys:        sys,
		RemoteIP:   netip.MustParseAddr("127.0.0.1"),
		Remote:     &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 900},
		Local:      &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2049},
		Network:    "tcp",
	}
}

// serve runs one call; consumed is how many argument bytes it decoded.
func serve(h rpc.Handler, prog, vers, proc uint32, sys *rpc.AuthSysCred, args []byte) (res []byte, consumed int, err error) {
	req := request(prog, vers, proc, sys, args)
	w := xdr.NewWriter(256)
	err = h.ServeRPC(context.Background(), req, w)
	return w.Bytes(), req.Args.Offset(), err
}

func isStatus(err error, want rpc.AcceptStat) bool {
	var ce *rpc.CallError
	return errors.As(err, &ce) && ce.Auth == 0 && ce.Accept == want
}

// checkTruncations re-runs a call whose arguments decoded with each cut
// of them: every one must be GARBAGE_ARGS.
func checkTruncations(t *testing.T, h rpc.Handler, prog, vers, proc uint32, sys *rpc.AuthSysCred, args []byte, consumed int) {
	t.Helper()
	cuts := []int{consumed - 1, consumed / 2, 0}
	for _, k := range cuts {
		if k < 0 || k >= consumed {
			continue
		}
		if _, _, err := serve(h, prog, vers, proc, sys, args[:k]); !isStatus(err, rpc.GarbageArgs) {
			t.Fatalf("proc %d with %d of the %d argument bytes it decodes: %v, want GARBAGE_ARGS", proc, k, consumed, err)
		}
	}
}

type nfsSeed struct {
	proc uint32
	args []byte
}

func enc(f func(w *xdr.Writer)) []byte {
	w := xdr.NewWriter(64)
	f(w)
	return w.Bytes()
}

// The markers are written as raw bytes where a handle's XDR goes.
func fh(w *xdr.Writer, m int) { w.FixedOpaque([]byte(markers[m])) }

func noSattr(w *xdr.Writer) {
	for range 4 {
		w.Bool(false)
	}
	w.Uint32(0)
	w.Uint32(0)
}

func nfsSeeds() []nfsSeed {
	const root, file, dir, foreign = 0, 1, 2, 3
	return []nfsSeed{
		{0, nil},
		{1, enc(func(w *xdr.Writer) { fh(w, file) })},
		{1, enc(func(w *xdr.Writer) { fh(w, foreign) })},
		{1, enc(func(w *xdr.Writer) { w.Opaque([]byte("not a handle")) })},
		{2, enc(func(w *xdr.Writer) {
			fh(w, file)
			w.Bool(true)
			w.Uint32(0o640)
			w.Bool(false)
			w.Bool(false)
			w.Bool(true)
			w.Uint64(3)
			w.Uint32(1)
			w.Uint32(2)
			w.Uint32(5)
			w.Uint32(6)
			w.Bool(false)
		})},
		{3, enc(func(w *xdr.Writer) { fh(w, root); w.String("file") })},
		{3, enc(func(w *xdr.Writer) { fh(w, root); w.String("..") })},
		{4, enc(func(w *xdr.Writer) { fh(w, dir); w.Uint32(0x3f) })},
		{5, enc(func(w *xdr.Writer) { fh(w, file) })},
		{6, enc(func(w *xdr.Writer) { fh(w, file); w.Uint64(2); w.Uint32(100) })},
		{7, enc(func(w *xdr.Writer) { fh(w, file); w.Uint64(4); w.Uint32(5); w.Uint32(2); w.Opaque([]byte("hello")) })},
		{8, enc(func(w *xdr.Writer) { fh(w, dir); w.String("new"); w.Uint32(wire.Guarded); noSattr(w) })},
		{8, enc(func(w *xdr.Writer) {
			fh(w, dir)
			w.String("excl")
			w.Uint32(wire.Exclusive)
			w.FixedOpaque([]byte("verifier"))
		})},
		{9, enc(func(w *xdr.Writer) { fh(w, dir); w.String("sub"); noSattr(w) })},
		{10, enc(func(w *xdr.Writer) { fh(w, dir); w.String("ln"); noSattr(w); w.String("../file") })},
		{11, enc(func(w *xdr.Writer) { fh(w, dir); w.String("fifo"); w.Uint32(uint32(wire.TypeFifo)); noSattr(w) })},
		{11, enc(func(w *xdr.Writer) {
			fh(w, dir)
			w.String("chr")
			w.Uint32(uint32(wire.TypeChr))
			noSattr(w)
			w.Uint32(1)
			w.Uint32(3)
		})},
		{12, enc(func(w *xdr.Writer) { fh(w, dir); w.String("new") })},
		{13, enc(func(w *xdr.Writer) { fh(w, dir); w.String("sub") })},
		{14, enc(func(w *xdr.Writer) { fh(w, dir); w.String("a"); fh(w, root); w.String("b") })},
		{15, enc(func(w *xdr.Writer) { fh(w, file); fh(w, dir); w.String("hard") })},
		{16, enc(func(w *xdr.Writer) { fh(w, root); w.Uint64(0); w.Uint64(0); w.Uint32(4096) })},
		{17, enc(func(w *xdr.Writer) { fh(w, root); w.Uint64(0); w.Uint64(0); w.Uint32(1024); w.Uint32(8192) })},
		{18, enc(func(w *xdr.Writer) { fh(w, root) })},
		{19, enc(func(w *xdr.Writer) { fh(w, root) })},
		{20, enc(func(w *xdr.Writer) { fh(w, dir) })},
		{21, enc(func(w *xdr.Writer) { fh(w, file); w.Uint64(0); w.Uint32(0) })},
		{22, nil},
	}
}

func FuzzNFS(f *testing.F) {
	for i, s := range nfsSeeds() {
		f.Add(uint8(s.proc), uint8(i%4), s.args)
	}
	e := newFuzzEnv(f, f.TempDir())
	f.Fuzz(func(t *testing.T, proc, cred uint8, args []byte) {
		p := uint32(proc) % 24
		sys := credFor(cred)
		args = substitute(args, e.handles(t))
		res, consumed, err := serve(e.nfs, Program, Version, p, sys, args)
		switch {
		case p >= 22:
			if !isStatus(err, rpc.ProcUnavail) {
				t.Fatalf("proc %d: %v, want PROC_UNAVAIL", p, err)
			}
			return
		case isStatus(err, rpc.GarbageArgs):
			return
		case err != nil:
			t.Fatalf("proc %d: %v", p, err)
		}
		if err := checkNFSResult(p, res); err != nil {
			t.Fatalf("proc %d: malformed result %x: %v", p, res, err)
		}
		checkTruncations(t, e.nfs, Program, Version, p, sys, args, consumed)
	})
}

// resultCodec is the codec of a procedure's results.
func resultCodec(proc uint32) rpctest.Codec {
	switch proc {
	case wire.ProcGetattr:
		return &wire.GetattrRes{}
	case wire.ProcSetattr, wire.ProcRemove, wire.ProcRmdir:
		return &wire.WccRes{}
	case wire.ProcLookup:
		return &wire.LookupRes{}
	case wire.ProcAccess:
		return &wire.AccessRes{}
	case wire.ProcReadlink:
		return &wire.ReadlinkRes{}
	case wire.ProcRead:
		return &wire.ReadRes{}
	case wire.ProcWrite:
		return &wire.WriteRes{}
	case wire.ProcCreate, wire.ProcMkdir, wire.ProcSymlink, wire.ProcMknod:
		return &wire.CreatedRes{}
	case wire.ProcRename:
		return &wire.RenameRes{}
	case wire.ProcLink:
		return &wire.LinkRes{}
	case wire.ProcReaddir, wire.ProcReaddirplus:
		return &wire.ReaddirRes{Plus: proc == wire.ProcReaddirplus}
	case wire.ProcFsstat:
		return &wire.FsstatRes{}
	case wire.ProcFsinfo:
		return &wire.FsinfoRes{}
	case wire.ProcPathconf:
		return &wire.PathconfRes{}
	case wire.ProcCommit:
		return &wire.CommitRes{}
	}
	return nil
}

// checkNFSResult decodes res with the procedure's result codec (RFC
// 1813's layout, written once in pkg/nfs3/wire) and checks that the
// status is one RFC 1813 defines and nothing is missing or left over.
func checkNFSResult(proc uint32, res []byte) error {
	if proc == wire.ProcNull {
		if len(res) != 0 {
			return errors.New("NULL returned data")
		}
		return nil
	}
	dec := resultCodec(proc)
	if dec == nil {
		return fmt.Errorf("no procedure %d", proc)
	}
	r := xdr.NewReader(res)
	if err := dec.Decode(r); err != nil {
		return err
	}
	if st := wire.Status(binary.BigEndian.Uint32(res)); !st.Known() {
		return fmt.Errorf("unknown status %d", st)
	}
	if v, ok := dec.(*wire.ReadRes); ok && v.Status == wire.OK && int(v.Count) != len(v.Data) {
		return fmt.Errorf("READ count %d with %d bytes", v.Count, len(v.Data))
	}
	if r.Remaining() != 0 {
		return fmt.Errorf("%d bytes left over", r.Remaining())
	}
	return nil
}

type mountSeed struct {
	vers, proc uint32
	args       []byte
}

func mountSeeds() []mountSeed {
	path := func(p string) []byte { return enc(func(w *xdr.Writer) { w.String(p) }) }
	return []mountSeed{
		{3, wire.MountProcMnt, path("/volumes/fuzz")},
		{3, wire.MountProcMnt, path("/volumes/fuzz/dir")},
		{3, wire.MountProcMnt, path("/volumes/fuzz/file")},
		{3, wire.MountProcMnt, path("/volumes/nope")},
		{1, wire.MountProcMnt, path("/volumes/fuzz")},
		{3, wire.MountProcDump, nil},
		{3, wire.MountProcUmnt, path("/volumes/fuzz")},
		{3, wire.MountProcUmntAll, nil},
		{3, wire.MountProcExport, nil},
		{3, 6, nil},
	}
}

func FuzzMount(f *testing.F) {
	for i, s := range mountSeeds() {
		f.Add(uint8(s.vers), uint8(s.proc), uint8(i), s.args)
	}
	e := newFuzzEnv(f, f.TempDir())
	f.Fuzz(func(t *testing.T, vers, proc, cred uint8, args []byte) {
		v, p := uint32(vers)%3+1, uint32(proc)%8
		sys := credFor(cred)
		res, consumed, err := serve(e.mount, MountProgram, v, p, sys, args)
		switch {
		case p > wire.MountProcExport || p == wire.MountProcMnt && v != 3:
			if !isStatus(err, rpc.ProcUnavail) {
				t.Fatalf("v%d proc %d: %v, want PROC_UNAVAIL", v, p, err)
			}
			return
		case isStatus(err, rpc.GarbageArgs):
			return
		case err != nil:
			t.Fatalf("v%d proc %d: %v", v, p, err)
		}
		if err := checkMountResult(e, p, res); err != nil {
			t.Fatalf("v%d proc %d: malformed result %x: %v", v, p, res, err)
		}
		checkTruncations(t, e.mount, MountProgram, v, p, sys, args, consumed)
	})
}

func checkMountResult(e *fuzzEnv, proc uint32, res []byte) error {
	r := xdr.NewReader(res)
	switch proc {
	case wire.MountProcMnt:
		var m wire.MntRes
		if err := m.Decode(r); err != nil {
			return err
		}
		switch m.Status {
		case wire.MountOK:
			n, err := e.t.Resolve(m.FH)
			if err != nil {
				return fmt.Errorf("MNT returned a handle that does not resolve: %v", err)
			}
			e.t.Release(n)
		case wire.MountErrNoEnt, wire.MountErrAccess, wire.MountErrNotDir, wire.MountErrNameTooLong:
		default:
			return fmt.Errorf("mount status %d", m.Status)
		}
	case wire.MountProcDump:
		var l wire.MountList
		if err := l.Decode(r); err != nil {
			return err
		}
	case wire.MountProcExport:
		var l wire.Exports
		if err := l.Decode(r); err != nil {
			return err
		}
	}
	if r.Err() != nil {
		return r.Err()
	}
	if r.Remaining() != 0 {
		return fmt.Errorf("%d bytes left over", r.Remaining())
	}
	return nil
}

// TestWriteFuzzSeeds rewrites testdata/fuzz when NFS3_WRITE_SEEDS is set.
func TestWriteFuzzSeeds(t *testing.T) {
	write := fuzzseed.Writer(t, "NFS3_WRITE_SEEDS")
	for i, s := range nfsSeeds() {
		write("FuzzNFS", i, fmt.Sprintf("byte(%d)\nbyte(%d)\n[]byte(%q)\n", s.proc, i%4, s.args))
	}
	for i, s := range mountSeeds() {
		write("FuzzMount", i, fmt.Sprintf("byte(%d)\nbyte(%d)\nbyte(%d)\n[]byte(%q)\n", s.vers, s.proc, i, s.args))
	}
}
