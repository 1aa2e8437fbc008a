package rpcserver

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/rwxnfs/rwxnfs/pkg/portmap"
	"github.com/rwxnfs/rwxnfs/pkg/rpc"
	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// The test program, registered beside the portmapper on a real server.
const (
	testProg = 0x20000099
	testLow  = 1
	testHigh = 2

	procNull  = 0
	procEcho  = 1 // opaque<1024> → the same opaque
	procBlock = 2 // uint32 id: blocks until the test releases id, returns id
	procBig   = 3 // returns bigReply bytes
	procPanic = 4
)

const bigReply = 256 << 10

// testHandler serves the test program. procBlock calls announce
// themselves on started and wait for their id to be released.
type testHandler struct {
	started chan uint32
	mu      sync.Mutex
	gates   map[uint32]chan struct{}
}

func newTestHandler() *testHandler {
	return &testHandler{started: make(chan uint32, 1024), gates: make(map[uint32]chan struct{})}
}

func (h *testHandler) gate(id uint32) chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	g, ok := h.gates[id]
	if !ok {
		g = make(chan struct{})
		h.gates[id] = g
	}
	return g
}

// release lets the blocked call id (now or later) return.
func (h *testHandler) release(id uint32) { close(h.gate(id)) }

func (h *testHandler) ServeRPC(ctx context.Context, req *rpc.Request, w *xdr.Writer) error {
	r := req.Args
	switch req.Proc {
	case procNull:
		return nil
	case procEcho:
		b := r.Opaque(1024)
		if r.Err() != nil {
			return rpc.ErrGarbageArgs
		}
		w.Opaque(b)
		return nil
	case procBlock:
		id := r.Uint32()
		if r.Err() != nil {
			return rpc.ErrGarbageArgs
		}
		g := h.gate(id)
		h.started <- id
		select {
		case <-g:
		case <-ctx.Done():
			return ctx.Err()
		}
		w.Uint32(id)
		return nil
	case procBig:
		b := w.Grow(bigReply)
		for i := range b {
			b[i] = byte(i)
		}
		return nil
	case procPanic:
		panic("test handler panic")
	}
	return rpc.ErrProcUnavail
}

type testServer struct {
	*Server
	h    *testHandler
	addr string
	udp  string
}

func quietLog() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startServer serves the test program and the portmapper on loopback TCP
// and UDP. At the end of the test every blocked call is let go and the
// server shut down.
func startServer(t *testing.T, lim Limits) *testServer {
	t.Helper()
	h := newTestHandler()
	pm := &portmap.Table{}
	pm.Add(portmap.Mapping{Prog: testProg, Vers: 1, Network: "tcp", Port: 1234})
	mux := &rpc.Mux{}
	mux.Handle(rpc.Program{Prog: testProg, Low: testLow, High: testHigh, Name: "test", Handler: h})
	mux.Handle(pm.Program())
	s := &Server{Handler: mux, Log: quietLog(), Limits: lim}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}, 2)
	go func() { s.Serve(l); done <- struct{}{} }()
	go func() { s.ServeUDP(pc); done <- struct{}{} }()
	t.Cleanup(func() {
		h.mu.Lock()
		for _, g := range h.gates {
			select {
			case <-g:
			default:
				close(g)
			}
		}
		h.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		<-done
		<-done
	})
	return &testServer{Server: s, h: h, addr: l.Addr().String(), udp: pc.LocalAddr().String()}
}

// waitFor polls cond until it holds; the guard only turns a hang into a
// failure, nothing is asserted about how long it takes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// rawConn speaks record-marked RPC by hand, so tests can send anything.
type rawConn struct {
	t *testing.T
	net.Conn
	rr rpc.RecordReader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// A guard against hanging the test, not a timed assertion.
	c.SetDeadline(time.Now().Add(60 * time.Second))
	return &rawConn{t: t, Conn: c, rr: rpc.RecordReader{R: bufio.NewReader(c), Max: 4 << 20}}
}

// callMsg encodes a call message (no record mark).
func callMsg(xid, prog, vers, proc uint32, cred rpc.OpaqueAuth, args []byte) []byte {
	w := xdr.NewWriter(64 + len(args))
	rpc.WriteCall(w, xid, prog, vers, proc, cred)
	w.FixedOpaque(args) // args are already XDR, so a multiple of 4
	return w.Bytes()
}

func none() rpc.OpaqueAuth { return rpc.OpaqueAuth{Flavor: rpc.AuthNone} }

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// frag is one fragment with its header.
func frag(b []byte, last bool) []byte {
	h := uint32(len(b))
	if last {
		h |= 1 << 31
	}
	return append(u32(h), b...)
}

// writeRaw writes bytes as they are.
func (c *rawConn) writeRaw(b []byte) {
	c.t.Helper()
	if _, err := c.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// send writes msg as one record.
func (c *rawConn) send(msg []byte) { c.t.Helper(); c.writeRaw(frag(msg, true)) }

func (c *rawConn) call(xid, prog, vers, proc uint32, args []byte) {
	c.t.Helper()
	c.send(callMsg(xid, prog, vers, proc, none(), args))
}

// reply reads one reply record and decodes its header: the results, or
// the *rpc.ReplyError the reply carried.
func (c *rawConn) reply() (uint32, []byte, error) {
	c.t.Helper()
	rec, err := c.rr.Read(nil, nil)
	if err != nil {
		c.t.Fatalf("reading reply: %v", err)
	}
	r := xdr.NewReader(rec)
	xid, err := rpc.ParseReply(r)
	var re *rpc.ReplyError
	if err != nil && !errors.As(err, &re) {
		c.t.Fatalf("malformed reply %x: %v", rec, err)
	}
	return xid, r.Rest(), err
}

// expectReply reads a reply and checks its XID and that it succeeded.
func (c *rawConn) expectReply(xid uint32) []byte {
	c.t.Helper()
	got, body, err := c.reply()
	if err != nil || got != xid {
		c.t.Fatalf("reply xid %#x err %v, want xid %#x success", got, err, xid)
	}
	return body
}

// expectError reads a reply that must carry no results.
func (c *rawConn) expectError(xid uint32) *rpc.ReplyError {
	c.t.Helper()
	got, body, err := c.reply()
	var re *rpc.ReplyError
	if !errors.As(err, &re) || got != xid {
		c.t.Fatalf("reply xid %#x err %v, want xid %#x with an RPC error", got, err, xid)
	}
	if len(body) != 0 {
		c.t.Fatalf("error reply carries %d more bytes: %x", len(body), body)
	}
	return re
}

// expectClosed checks that the server closed the connection.
func (c *rawConn) expectClosed() {
	c.t.Helper()
	rec, err := c.rr.Read(nil, nil)
	if err == nil {
		c.t.Fatalf("got a record %x, want the connection closed", rec)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatalf("connection still open: %v", err)
	}
}

// echo makes one ECHO call on a fresh connection and checks the answer:
// the server is still serving.
func (ts *testServer) echo(t *testing.T) {
	t.Helper()
	c := dialRaw(t, ts.addr)
	c.call(7, testProg, 1, procEcho, opaque([]byte("still here")))
	body := c.expectReply(7)
	if string(body) != string(opaque([]byte("still here"))) {
		t.Fatalf("echo returned %x", body)
	}
	c.Close()
}

func opaque(b []byte) []byte {
	w := xdr.NewWriter(len(b) + 8)
	w.Opaque(b)
	return w.Bytes()
}
