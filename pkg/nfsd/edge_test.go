package nfsd

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/rwxnfs/rwxnfs/internal/rpctest"
	"github.com/rwxnfs/rwxnfs/pkg/exports"
	"github.com/rwxnfs/rwxnfs/pkg/nfs3/wire"
	"github.com/rwxnfs/rwxnfs/pkg/nfsclient"
	"github.com/rwxnfs/rwxnfs/pkg/rpc"
	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// Protocol edge cases, sent by hand as a hostile client would: argument
// lengths that disagree with the data, mis-sized handles and cookies.
// Each gets an answer (GARBAGE_ARGS for what does not decode, an NFS
// error for what decodes but makes no sense), the connection stays in
// step, and nothing is changed.

// status is the NFS status at the start of a reply's results.
func status(t *testing.T, res []byte) wire.Status {
	t.Helper()
	if len(res) < 4 {
		t.Fatalf("results %x carry no status", res)
	}
	return wire.Status(binary.BigEndian.Uint32(res))
}

func TestMalformedArgumentsAreAnswered(t *testing.T) {
	d := start(t, t.TempDir())
	c := dial(t, d, 0, 0)
	root := mount(t, c, "default")
	fh, _, err := c.Create(ctx(t), root, "f", 0, nfsclient.SetAttr{Mode: nfsclient.U32(0o644)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(ctx(t), fh, 0, []byte("original"), nfsclient.FileSync); err != nil {
		t.Fatal(err)
	}
	enc := func(f func(w *xdr.Writer)) []byte { w := xdr.NewWriter(64); f(w); return w.Bytes() }
	long := strings.Repeat("n", 300)
	garbage := func(t *testing.T, res []byte, err error) {
		var re *rpc.ReplyError
		if !errors.As(err, &re) || re.Accept != rpc.GarbageArgs {
			t.Fatalf("got %v %x, want GARBAGE_ARGS", err, res)
		}
	}
	nfsErr := func(want ...wire.Status) func(t *testing.T, res []byte, err error) {
		return func(t *testing.T, res []byte, err error) {
			if err != nil {
				t.Fatalf("got %v, want one of NFS status %v", err, want)
			}
			st := status(t, res)
			for _, w := range want {
				if st == w {
					return
				}
			}
			t.Fatalf("status %v, want one of %v", st, want)
		}
	}
	for _, tc := range []struct {
		name  string
		proc  uint32
		args  []byte
		check func(t *testing.T, res []byte, err error)
	}{
		{"empty handle", wire.ProcGetattr, enc(func(w *xdr.Writer) { w.Opaque(nil) }), nfsErr(wire.ErrBadHandle)},
		{"65-byte handle", wire.ProcGetattr, enc(func(w *xdr.Writer) { w.Opaque(make([]byte, 65)) }), garbage},
		{"handle of 64 random bytes", wire.ProcGetattr, enc(func(w *xdr.Writer) { w.Opaque([]byte(strings.Repeat("x", 64))) }), nfsErr(wire.ErrBadHandle, wire.ErrStale)},
		{"handle cut short", wire.ProcGetattr, enc(func(w *xdr.Writer) { w.Opaque(fh) })[:4+len(fh)/2], garbage},
		{"handle length beyond the record", wire.ProcGetattr, append(rpctest.U32(1<<30), fh...), garbage},
		{"name length beyond the record", wire.ProcLookup, append(enc(func(w *xdr.Writer) { w.Opaque(root) }), append(rpctest.U32(1000), "f\x00\x00\x00"...)...), garbage},
		{"name of 300 bytes", wire.ProcLookup, enc(func(w *xdr.Writer) { w.Opaque(root); w.String(long) }), nfsErr(wire.ErrNameTooLong)},
		{"WRITE data length beyond the record", wire.ProcWrite, enc(func(w *xdr.Writer) {
			w.Opaque(fh)
			w.Uint64(0)
			w.Uint32(8)
			w.Uint32(2)
			w.Uint32(1 << 20)
			w.FixedOpaque([]byte("XXXXXXXX"))
		}), garbage},
		{"WRITE count beyond its data", wire.ProcWrite, enc(func(w *xdr.Writer) {
			w.Opaque(fh)
			w.Uint64(0)
			w.Uint32(1000)
			w.Uint32(2)
			w.Opaque([]byte("XXXXXXXX"))
		}), garbage},
		{"READ of 4 GiB", wire.ProcRead, rpctest.Encode(&wire.ReadArgs{FH: fh, Count: 0xffffffff}), nfsErr(wire.OK)},
		{"READDIR from a cookie never given", wire.ProcReaddir, rpctest.Encode(&wire.ReaddirArgs{Dir: root, Cookie: 0x7fff_ffff_0000, Count: 4096}), nfsErr(wire.ErrBadCookie, wire.OK)},
		{"READDIR with a wrong verifier", wire.ProcReaddir, rpctest.Encode(&wire.ReaddirArgs{Dir: root, Cookie: 3, Verf: [8]byte{1, 2, 3}, Count: 4096}), nfsErr(wire.ErrBadCookie, wire.OK)},
		{"READDIR of 0 bytes", wire.ProcReaddir, rpctest.Encode(&wire.ReaddirArgs{Dir: root, Count: 0}), nfsErr(wire.ErrTooSmall)},
		{"READDIRPLUS of 4 GiB", wire.ProcReaddirplus, rpctest.Encode(&wire.ReaddirArgs{Plus: true, Dir: root, Count: 0xffffffff, DirCount: 0xffffffff}), nfsErr(wire.OK)},
		{"READDIR of a file", wire.ProcReaddir, rpctest.Encode(&wire.ReaddirArgs{Dir: fh, Count: 4096}), nfsErr(wire.ErrNotDir)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := c.RPC.Call(ctx(t), wire.Program, wire.Version, tc.proc, func(w *xdr.Writer) { w.FixedOpaque(tc.args) })
			tc.check(t, res, err)
		})
	}
	b, _, err := c.Read(ctx(t), fh, 0, 100)
	if err != nil || string(b) != "original" {
		t.Fatalf("the file reads %q, %v", b, err)
	}
}

// What a caller without credentials learns from MOUNT (which takes
// AUTH_NONE): EXPORT lists only what its address may mount, and DUMP only
// its own mounts, not the other clients'.
func TestUnauthenticatedCallersLearnLittle(t *testing.T) {
	d := start(t, t.TempDir())
	opts := exports.DefaultOptions()
	opts.Clients = []netip.Prefix{netip.MustParsePrefix("127.0.0.5/32")}
	if _, err := d.Table.Create("tenant-b", opts); err != nil {
		t.Fatal(err)
	}
	b := dialFrom(t, d, "127.0.0.5")
	mount(t, b, "tenant-b")
	a := dialFrom(t, d, "127.0.0.6")
	a.RPC.Cred = rpc.OpaqueAuth{Flavor: rpc.AuthNone}
	list, err := a.Exports(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := list["/volumes/tenant-b"]; ok || len(list) != 1 {
		t.Fatalf("127.0.0.6 is shown %v", list)
	}
	if list, err := b.Exports(ctx(t)); err != nil || len(list) != 2 {
		t.Fatalf("127.0.0.5 is shown %v, %v", list, err)
	}
	dump := func(c *nfsclient.Client) wire.MountList {
		res, err := c.RPC.Call(ctx(t), wire.MountProgram, wire.MountVersion, wire.MountProcDump, nil)
		if err != nil {
			t.Fatal(err)
		}
		var l wire.MountList
		if err := l.Decode(xdr.NewReader(res)); err != nil {
			t.Fatal(err)
		}
		return l
	}
	if l := dump(a); len(l) != 0 {
		t.Fatalf("127.0.0.6 sees the mounts %v", l)
	}
	if l := dump(b); len(l) != 1 || l[0].Host != "127.0.0.5" {
		t.Fatalf("127.0.0.5 sees the mounts %v", l)
	}
}
