package rpcserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"

	"github.com/rwxnfs/rwxnfs/internal/fuzzseed"
	"github.com/rwxnfs/rwxnfs/pkg/rpc"
	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// fuzzServer has the test program (less the call that blocks) and the
// portmapper registered; dispatch is driven directly with each message.
func fuzzServer(lim Limits) *Server {
	h := newTestHandler()
	s := &Server{Log: quietLog(), Limits: lim}
	s.Register(Program{Prog: testProg, Low: testLow, High: testHigh, Name: "test", Handler: HandlerFunc(
		func(ctx context.Context, req *Request, w *xdr.Writer) error {
			if req.Proc == procBlock {
				return ErrProcUnavail
			}
			return h.ServeRPC(ctx, req, w)
		})})
	pm := &Portmap{}
	pm.Add(Mapping{Prog: testProg, Vers: 1, Network: "tcp", Port: 1234}, Mapping{Prog: testProg, Vers: 2, Network: "udp", Port: 99})
	s.Register(pm.Program())
	s.init()
	return s
}

var (
	fuzzRemote = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 900}
	fuzzLocal  = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2049}
)

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

func dispatchSeeds() [][]byte {
	sys := rpc.AuthSysCred{Machine: "m", UID: 1, GID: 1, GIDs: []uint32{2}}.Opaque()
	return [][]byte{
		callMsg(1, testProg, 1, procEcho, none(), opaque([]byte("hi"))),
		callMsg(2, testProg, 2, procNull, sys, nil),
		callMsg(3, testProg, 3, procNull, none(), nil),
		callMsg(4, 1, 1, 0, none(), nil),
		callMsg(5, testProg, 1, 42, rpc.OpaqueAuth{Flavor: 6}, nil),
		callMsg(6, PortmapProg, 2, pmapGetport, none(), getportArgs(testProg, 1, ipprotoTCP)),
		callMsg(7, PortmapProg, 4, rpcbGetVers, none(), rpcbArgs(testProg, 7, "tcp")),
		callMsg(8, testProg, 1, procPanic, none(), nil),
	}
}

// FuzzDispatch sends arbitrary messages through the server's call path.
// Whatever comes in, the server does not panic, answers exactly the
// messages that carry a whole call header (and RPC version mismatches),
// and answers with a well-formed reply to that XID whose status is the
// one RFC 5531 calls for: RPC_MISMATCH, AUTH_BADCRED, PROG_UNAVAIL,
// PROG_MISMATCH with our version range, PROC_UNAVAIL, GARBAGE_ARGS.
func FuzzDispatch(f *testing.F) {
	for _, s := range dispatchSeeds() {
		f.Add(s)
	}
	s := fuzzServer(Limits{})
	f.Fuzz(func(t *testing.T, msg []byte) {
		w := xdr.NewWriter(512)
		replied := s.dispatch(context.Background(), msg, w, fuzzRemote, fuzzLocal, "tcp")
		h, herr := rpc.ParseCall(xdr.NewReader(msg))
		if herr != nil && !errors.Is(herr, rpc.ErrBadRPCVersion) {
			if replied {
				t.Fatalf("answered a message without a call header (%v)", herr)
			}
			return
		}
		if !replied {
			t.Fatalf("no reply to a call")
		}
		r := xdr.NewReader(w.Bytes())
		xid, err := rpc.ParseReply(r)
		if xid != h.XID {
			t.Fatalf("reply XID %#x to call %#x", xid, h.XID)
		}
		var re *rpc.ReplyError
		if err != nil && !errors.As(err, &re) {
			t.Fatalf("malformed reply %x: %v", w.Bytes(), err)
		}
		if re != nil && r.Remaining() != 0 {
			t.Fatalf("error reply with %d trailing bytes", r.Remaining())
		}
		want := expectedReply(h, herr, msg)
		if want == nil {
			if err != nil {
				t.Fatalf("got %v, want success", err)
			}
			return
		}
		if re == nil || *re != *want {
			t.Fatalf("got %v (%+v), want %+v", err, re, want)
		}
	})
}

// expectedReply works out from the message alone what the reply must be;
// nil means success.
func expectedReply(h rpc.CallHeader, herr error, msg []byte) *rpc.ReplyError {
	if herr != nil {
		return &rpc.ReplyError{Denied: true, Mismatch: true, Low: 2, Hi: 2}
	}
	switch h.Cred.Flavor {
	case rpc.AuthNone:
	case rpc.AuthSys:
		if _, err := rpc.ParseAuthSys(h.Cred.Body); err != nil {
			return &rpc.ReplyError{Denied: true, Auth: rpc.AuthBadCred}
		}
	default:
		return &rpc.ReplyError{Denied: true, Auth: rpc.AuthBadCred}
	}
	r := xdr.NewReader(msg)
	rpc.ParseCall(r)
	args := r.Rest()
	switch h.Prog {
	case testProg:
		if h.Vers < testLow || h.Vers > testHigh {
			return &rpc.ReplyError{Accept: rpc.ProgMismatch, Low: testLow, Hi: testHigh}
		}
		switch h.Proc {
		case procNull, procBig:
			return nil
		case procEcho:
			if !validOpaque(args, 1024) {
				return &rpc.ReplyError{Accept: rpc.GarbageArgs}
			}
			return nil
		case procPanic:
			return &rpc.ReplyError{Accept: rpc.SystemErr}
		}
		return &rpc.ReplyError{Accept: rpc.ProcUnavail}
	case PortmapProg:
		if h.Vers < 2 || h.Vers > 4 {
			return &rpc.ReplyError{Accept: rpc.ProgMismatch, Low: 2, Hi: 4}
		}
		return portmapExpected(h.Vers, h.Proc, args)
	}
	return &rpc.ReplyError{Accept: rpc.ProgUnavail}
}

func validOpaque(b []byte, max int) bool {
	r := xdr.NewReader(b)
	r.Opaque(max)
	return r.Err() == nil
}

// portmapExpected is the status a portmapper call must get.
func portmapExpected(vers, proc uint32, args []byte) *rpc.ReplyError {
	r := xdr.NewReader(args)
	switch {
	case proc == pmapNull, proc == pmapDump, vers == 2 && (proc == pmapSet || proc == pmapUnset), vers > 2 && proc == rpcbGettime:
		return nil
	case vers == 2 && proc == pmapGetport:
		r.Uint32()
		r.Uint32()
		r.Uint32()
		r.Uint32()
	case vers > 2 && (proc == pmapSet || proc == pmapUnset || proc == pmapGetport || proc == rpcbGetVers):
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
		{2, pmapGetport, getportArgs(testProg, 1, ipprotoTCP)},
		{2, pmapGetport, getportArgs(testProg, 2, ipprotoUDP)},
		{2, pmapDump, nil},
		{2, pmapSet, getportArgs(1, 1, 6)},
		{3, pmapGetport, rpcbArgs(testProg, 1, "tcp")},
		{4, rpcbGetVers, rpcbArgs(testProg, 9, "")},
		{4, pmapDump, nil},
		{3, pmapUnset, rpcbArgs(testProg, 1, "udp6")},
		{4, rpcbGettime, nil},
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
	pm := &Portmap{}
	pm.Add(Mapping{Prog: testProg, Vers: 1, Network: "tcp", Port: 1234}, Mapping{Prog: testProg, Vers: 2, Network: "udp", Port: 99})
	serve := func(vers, proc uint32, args []byte) (*Request, []byte, error) {
		req := &Request{
			CallHeader: rpc.CallHeader{Prog: PortmapProg, Vers: vers, Proc: proc},
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
		var ce *CallError
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
	case proc == pmapNull:
	case proc == pmapSet || proc == pmapUnset:
		if r.Bool() {
			t.Fatal("SET/UNSET succeeded")
		}
	case vers == 2 && proc == pmapGetport:
		if port := r.Uint32(); port > 65535 {
			t.Fatalf("port %d", port)
		}
	case vers == 2 && proc == pmapDump:
		for r.Bool() {
			r.Uint32()
			r.Uint32()
			r.Uint32()
			r.Uint32()
		}
	case proc == pmapGetport || proc == rpcbGetVers:
		if u := r.String(128); u != "" {
			if _, _, err := ParseUniversalAddr(u); err != nil {
				t.Fatal(err)
			}
		}
	case proc == pmapDump:
		for r.Bool() {
			r.Uint32()
			r.Uint32()
			r.String(64)
			r.String(128)
			r.String(256)
		}
	case proc == rpcbGettime:
		r.Uint32()
	}
	if r.Err() != nil || r.Remaining() != 0 {
		t.Fatalf("v%d proc %d: malformed result %x (%v, %d left)", vers, proc, res, r.Err(), r.Remaining())
	}
}

// TestWriteFuzzSeeds rewrites testdata/fuzz when SERVER_WRITE_SEEDS is set.
func TestWriteFuzzSeeds(t *testing.T) {
	write := fuzzseed.Writer(t, "SERVER_WRITE_SEEDS")
	for i, s := range dispatchSeeds() {
		write("FuzzDispatch", i, fmt.Sprintf("[]byte(%q)\n", s))
	}
	for i, s := range connSeeds() {
		write("FuzzConn", i, fmt.Sprintf("[]byte(%q)\n", s))
	}
	for i, s := range portmapSeeds() {
		write("FuzzPortmap", i, fmt.Sprintf("byte(%d)\nbyte(%d)\n[]byte(%q)\n", s.vers, s.proc, s.args))
	}
}

func connSeeds() [][]byte {
	var s [][]byte
	for _, m := range dispatchSeeds() {
		s = append(s, frag(m, true))
	}
	two := append(frag(dispatchSeeds()[0][:10], false), frag(dispatchSeeds()[0][10:], true)...)
	return append(s,
		append(two, two...),
		u32(1<<31|0x7fffffff),
		append(frag(dispatchSeeds()[1], true), u32(1<<31|100)...), // then cut short
		append(frag(nil, false), frag(nil, true)...),
		[]byte("GET / HTTP/1.0\r\n\r\n"),
	)
}

// FuzzConn streams arbitrary bytes into a connection of a real server
// (over an in-memory pipe, replies read and discarded). Whatever the
// stream, once the client hangs up the server ends the connection and
// gives back every call slot and byte it reserved for it: no input
// leaks the server's limits or wedges the connection.
func FuzzConn(f *testing.F) {
	for _, s := range connSeeds() {
		f.Add(s)
	}
	s := fuzzServer(Limits{MaxRecord: 4 << 10, PerConnInflight: 4, Inflight: 8, InflightBytes: 16 << 10})
	f.Fuzz(func(t *testing.T, stream []byte) {
		client, srv := net.Pipe()
		cn, err := s.newConn(srv)
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan struct{})
		go func() { cn.serve(); close(served) }()
		drained := make(chan struct{})
		go func() { io.Copy(io.Discard, client); close(drained) }()
		client.Write(stream) // fails if the server hung up first
		client.Close()
		<-served
		<-drained
		st := s.Stats()
		if st.Conns != 0 || st.Calls != 0 || st.Bytes != 0 {
			t.Fatalf("after the connection ended: %+v", st)
		}
		if st.MaxConnCalls > s.Limits.PerConnInflight || st.MaxBytes > s.Limits.InflightBytes {
			t.Fatalf("limits exceeded: %+v", st)
		}
	})
}
