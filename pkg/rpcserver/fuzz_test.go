package rpcserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/rwxnfs/rwxnfs/internal/fuzzseed"
	"github.com/rwxnfs/rwxnfs/internal/rpctest"
	"github.com/rwxnfs/rwxnfs/pkg/rpc"
	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// fuzzServer serves the test program (less the call that blocks);
// dispatch is driven directly with each message. (The portmapper's own
// replies are fuzzed in pkg/portmap.)
func fuzzServer(tb testing.TB, lim Limits) *Server {
	h := newTestHandler()
	mux := &rpc.Mux{}
	mux.Handle(rpc.Program{Prog: testProg, Low: testLow, High: testHigh, Name: "test", Handler: rpc.HandlerFunc(
		func(ctx context.Context, req *rpc.Request, w *xdr.Writer) error {
			if req.Proc == procBlock {
				return rpc.ErrProcUnavail
			}
			return h.ServeRPC(ctx, req, w)
		})})
	s := &Server{Handler: mux, Log: rpctest.Logger(tb), Limits: lim}
	s.init()
	return s
}

var (
	fuzzRemote = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 900}
	fuzzLocal  = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2049}
)

func dispatchSeeds() [][]byte {
	sys := rpc.AuthSysCred{Machine: "m", UID: 1, GID: 1, GIDs: []uint32{2}}.Opaque()
	return [][]byte{
		rpctest.CallMsg(1, testProg, 1, procEcho, rpctest.None(), opaque([]byte("hi"))),
		rpctest.CallMsg(2, testProg, 2, procNull, sys, nil),
		rpctest.CallMsg(3, testProg, 3, procNull, rpctest.None(), nil),
		rpctest.CallMsg(4, 1, 1, 0, rpctest.None(), nil),
		rpctest.CallMsg(5, testProg, 1, 42, rpc.OpaqueAuth{Flavor: 6}, nil),
		rpctest.CallMsg(6, 100000, 2, 3, rpctest.None(), append(append(rpctest.U32(testProg), rpctest.U32(1)...), append(rpctest.U32(6), rpctest.U32(0)...)...)),
		rpctest.CallMsg(7, 100000, 4, 9, rpctest.None(), opaque([]byte("rpcb"))),
		rpctest.CallMsg(8, testProg, 1, procPanic, rpctest.None(), nil),
	}
}

// FuzzDispatch sends arbitrary messages through the server's call path.
// Whatever comes in, the server does not panic, answers exactly the
// messages that carry a whole call header (and RPC version mismatches,
// and headers whole up to a credential or verifier that is cut short or
// too long), and answers with a well-formed reply to that XID whose
// status is the one RFC 5531 calls for: RPC_MISMATCH, AUTH_BADCRED,
// PROG_UNAVAIL, PROG_MISMATCH with our version range, PROC_UNAVAIL,
// GARBAGE_ARGS.
func FuzzDispatch(f *testing.F) {
	for _, s := range dispatchSeeds() {
		f.Add(s)
	}
	s := fuzzServer(f, Limits{})
	f.Fuzz(func(t *testing.T, msg []byte) {
		w := xdr.NewWriter(512)
		replied := s.dispatch(context.Background(), msg, w, fuzzRemote, fuzzLocal, "tcp")
		h, herr := rpc.ParseCall(xdr.NewReader(msg))
		if herr != nil && !errors.Is(herr, rpc.ErrBadRPCVersion) && !errors.Is(herr, rpc.ErrBadAuth) {
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
	switch {
	case errors.Is(herr, rpc.ErrBadAuth):
		// The header is whole up to a credential or verifier that is
		// cut short or too long: the XID is known, so it is answered.
		return &rpc.ReplyError{Denied: true, Auth: rpc.AuthBadCred}
	case herr != nil:
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
		case procNull, procBig, procWhere, procWhereNotBrief:
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
	}
	return &rpc.ReplyError{Accept: rpc.ProgUnavail}
}

func validOpaque(b []byte, max int) bool {
	r := xdr.NewReader(b)
	r.Opaque(max)
	return r.Err() == nil
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
}

func connSeeds() [][]byte {
	var s [][]byte
	for _, m := range dispatchSeeds() {
		s = append(s, rpctest.Frag(m, true))
	}
	two := append(rpctest.Frag(dispatchSeeds()[0][:10], false), rpctest.Frag(dispatchSeeds()[0][10:], true)...)
	return append(s,
		append(two, two...),
		rpctest.U32(1<<31|0x7fffffff),
		append(rpctest.Frag(dispatchSeeds()[1], true), rpctest.U32(1<<31|100)...), // then cut short
		append(rpctest.Frag(nil, false), rpctest.Frag(nil, true)...),
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
	s := fuzzServer(f, Limits{MaxRecord: 4 << 10, PerConnInflight: 4, Inflight: 8, InflightBytes: 16 << 10})
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
