package rpcserver

import (
	"bytes"
	"context"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/rwxnfs/rwxnfs/internal/rpctest"
	"github.com/rwxnfs/rwxnfs/pkg/portmap"
	"github.com/rwxnfs/rwxnfs/pkg/rpc"
	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// The test program, registered beside the portmapper on a real server.
const (
	testProg = 0x20000099
	testLow  = 1
	testHigh = 2

	procNull          = 0
	procEcho          = 1 // opaque<1024> → the same opaque
	procBlock         = 2 // uint32 id: blocks until the test releases id, returns id
	procBig           = 3 // returns bigReply bytes
	procPanic         = 4
	procWhere         = 5 // uint32 1 if the call ran on the goroutine that read it, else 0; brief
	procWhereNotBrief = 6 // the same, not brief
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
	case procWhere, procWhereNotBrief:
		buf := make([]byte, 64<<10)
		buf = buf[:runtime.Stack(buf, false)]
		if bytes.Contains(buf, []byte("rpcserver.(*conn).serve(")) {
			w.Uint32(1)
		} else {
			w.Uint32(0)
		}
		return nil
	}
	return rpc.ErrProcUnavail
}

// Brief implements rpc.Brief: the calls that return at once.
func (h *testHandler) Brief(_, _, proc uint32) bool {
	switch proc {
	case procNull, procEcho, procBig, procWhere:
		return true
	}
	return false
}

type testServer struct {
	*Server
	h    *testHandler
	addr string
	udp  string
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
	s := &Server{Handler: mux, Log: rpctest.Logger(t), Limits: lim}
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

// echo makes one ECHO call on a fresh connection and checks the answer:
// the server is still serving.
func (ts *testServer) echo(t *testing.T) {
	t.Helper()
	c := rpctest.Dial(t, ts.addr)
	c.Call(7, testProg, 1, procEcho, opaque([]byte("still here")))
	body := c.ExpectReply(7)
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
