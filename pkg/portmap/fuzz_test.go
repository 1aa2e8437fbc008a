package portmap

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/rwxnfs/rwxnfs/internal/fuzzseed"
	"github.com/rwxnfs/rwxnfs/internal/rpctest"
	"github.com/rwxnfs/rwxnfs/pkg/rpc"
	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// A program the table maps, on TCP for version 1 and UDP for version 2.
const testProg = 0x20000099

var (
	fuzzRemote = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 900}
	fuzzLocal  = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2049}
)

var u32 = rpctest.U32

func getportArgs(prog, vers, prot uint32) []byte {
	return append(append(u32(prog), u32(vers)...), append(u32(prot), u32(0)...)...)
}

func rpcbArgs(prog, vers uint32, netid string) []byte {
	w := xdr.NewWriter(64)
	w.Uint32(prog)
	w.Uint32(vers)
	w.String(netid)
	w.String("")
	w.String("owner")
	return w.Bytes()
}

// portmapExpected is the status a portmapper call must get.
func portmapExpected(vers, proc uint32, args []byte) *rpc.ReplyError {
	r := xdr.NewReader(args)
	switch {
	case proc == ProcNull, proc == ProcDump, vers == 2 && (proc == ProcSet || proc == ProcUnset), vers > 2 && proc == ProcGettime:
		return nil
	case vers == 2 && proc == ProcGetport:
		r.Uint32()
		r.Uint32()
		r.Uint32()
		r.Uint32()
	case vers > 2 && (proc == ProcSet || proc == ProcUnset || proc == ProcGetport || proc == ProcGetVersAddr):
		readRPCB(r)
	default:
		return &rpc.ReplyError{Accept: rpc.ProcUnavail}
	}
	if r.Err() != nil {
		return &rpc.ReplyError{Accept: rpc.GarbageArgs}
	}
	return nil
}

func portmapSeeds() []struct {
	vers, proc uint32
	args       []byte
} {
	return []struct {
		vers, proc uint32
		args       []byte
	}{
		{2, ProcGetport, getportArgs(testProg, 1, IPProtoTCP)},
		{2, ProcGetport, getportArgs(testProg, 2, IPProtoUDP)},
		{2, ProcDump, nil},
		{2, ProcSet, getportArgs(1, 1, 6)},
		{3, ProcGetport, rpcbArgs(testProg, 1, "tcp")},
		{4, ProcGetVersAddr, rpcbArgs(testProg, 9, "")},
		{4, ProcDump, nil},
		{3, ProcUnset, rpcbArgs(testProg, 1, "udp6")},
		{4, ProcGettime, nil},
	}
}

// FuzzPortmap feeds arbitrary arguments to every portmapper and rpcbind
// procedure. Besides the right status, a result that decodes must be the
// shape the procedure returns, and arguments cut anywhere short of what
// was consumed must be GARBAGE_ARGS.
func FuzzPortmap(f *testing.F) {
	for _, s := range portmapSeeds() {
		f.Add(uint8(s.vers), uint8(s.proc), s.args)
	}
	pm := &Table{}
	pm.Add(Mapping{Prog: testProg, Vers: 1, Network: "tcp", Port: 1234}, Mapping{Prog: testProg, Vers: 2, Network: "udp", Port: 99})
	serve := func(vers, proc uint32, args []byte) (*rpc.Request, []byte, error) {
		req := &rpc.Request{
			CallHeader: rpc.CallHeader{Prog: Prog, Vers: vers, Proc: proc},
			Args:       xdr.NewReader(args), Remote: fuzzRemote, Local: fuzzLocal,
			RemoteIP: netip.MustParseAddr("127.0.0.1"), Network: "tcp",
		}
		w := xdr.NewWriter(128)
		err := pm.ServeRPC(context.Background(), req, w)
		return req, w.Bytes(), err
	}
	f.Fuzz(func(t *testing.T, vers, proc uint8, args []byte) {
		v, p := uint32(vers%3)+2, uint32(proc%12)
		req, res, err := serve(v, p, args)
		want := portmapExpected(v, p, args)
		var ce *rpc.CallError
		switch {
		case want == nil && err != nil:
			t.Fatalf("v%d proc %d: %v, want success", v, p, err)
		case want != nil && (!errors.As(err, &ce) || ce.Accept != want.Accept || ce.Auth != 0):
			t.Fatalf("v%d proc %d: %v, want %v", v, p, err, want.Accept)
		case err != nil:
			if len(res) != 0 {
				t.Fatalf("an error left %d bytes of results", len(res))
			}
			return
		}
		checkPortmapResult(t, v, p, res)
		if k := req.Args.Offset(); k > 0 {
			if _, _, err := serve(v, p, args[:k-1]); !errors.As(err, &ce) || ce.Accept != rpc.GarbageArgs {
				t.Fatalf("v%d proc %d with arguments cut to %d of %d bytes: %v, want GARBAGE_ARGS", v, p, k-1, k, err)
			}
		}
	})
}

func checkPortmapResult(t *testing.T, vers, proc uint32, res []byte) {
	t.Helper()
	r := xdr.NewReader(res)
	switch {
	case proc == ProcNull:
	case proc == ProcSet || proc == ProcUnset:
		if r.Bool() {
			t.Fatal("SET/UNSET succeeded")
		}
	case vers == 2 && proc == ProcGetport:
		if port := r.Uint32(); port > 65535 {
			t.Fatalf("port %d", port)
		}
	case vers == 2 && proc == ProcDump:
		for r.Bool() {
			r.Uint32()
			r.Uint32()
			r.Uint32()
			r.Uint32()
		}
	case proc == ProcGetport || proc == ProcGetVersAddr:
		if u := r.String(128); u != "" {
			if _, _, err := ParseUniversalAddr(u); err != nil {
				t.Fatal(err)
			}
		}
	case proc == ProcDump:
		for r.Bool() {
			r.Uint32()
			r.Uint32()
			r.String(64)
			r.String(128)
			r.String(256)
		}
	case proc == ProcGettime:
		r.Uint32()
	}
	if r.Err() != nil || r.Remaining() != 0 {
		t.Fatalf("v%d proc %d: malformed result %x (%v, %d left)", vers, proc, res, r.Err(), r.Remaining())
	}
}

// TestWriteFuzzSeeds rewrites testdata/fuzz when PORTMAP_WRITE_SEEDS is set.
func TestWriteFuzzSeeds(t *testing.T) {
	write := fuzzseed.Writer(t, "PORTMAP_WRITE_SEEDS")
	for i, s := range portmapSeeds() {
		write("FuzzPortmap", i, fmt.Sprintf("byte(%d)\nbyte(%d)\n[]byte(%q)\n", s.vers, s.proc, s.args))
	}
}
