package rpcserver

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/rwxnfs/rwxnfs/internal/rpctest"
	"github.com/rwxnfs/rwxnfs/pkg/portmap"
	"github.com/rwxnfs/rwxnfs/pkg/rpc"
	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// These tests drive a real server over loopback sockets with hand-made
// records, so that each malformed input reaches the server exactly as a
// hostile or broken client would send it.

var small = Limits{MaxRecord: 64 << 10, PerConnInflight: 4, Inflight: 8, InflightBytes: 1 << 20}

// expectAllReleased waits for the only connection to go and checks that it
// left no call slot or reserved byte behind, and that the server serves.
func (ts *testServer) expectAllReleased(t *testing.T) {
	t.Helper()
	rpctest.Eventually(t, "the connection to go", func() bool { return ts.Stats().Conns == 0 })
	if st := ts.Stats(); st.Calls != 0 || st.Bytes != 0 {
		t.Fatalf("a closed connection still holds %d calls, %d bytes", st.Calls, st.Bytes)
	}
	ts.echo(t)
}

func TestTruncatedRecordThenClose(t *testing.T) {
	ts := startServer(t, small)
	c := rpctest.Dial(t, ts.addr)
	msg := rpctest.CallMsg(1, testProg, 1, procEcho, rpctest.None(), opaque([]byte("hello")))
	c.WriteRaw(rpctest.Frag(msg, true)[:4+len(msg)/2]) // header promises more than comes
	rpctest.Eventually(t, "the partial record to be reserved", func() bool { return ts.Stats().Bytes == int64(len(msg)) })
	c.Close()
	ts.expectAllReleased(t)
}

func TestTruncatedBetweenFragmentsThenClose(t *testing.T) {
	ts := startServer(t, small)
	c := rpctest.Dial(t, ts.addr)
	msg := rpctest.CallMsg(1, testProg, 1, procNull, rpctest.None(), nil)
	c.WriteRaw(rpctest.Frag(msg[:8], false)) // a first fragment, then nothing
	c.Close()
	ts.expectAllReleased(t)
}

func TestAbsurdRecordLength(t *testing.T) {
	for _, tc := range []struct {
		name string
		send []byte
	}{
		{"max length", rpctest.U32(1<<31 | 0x7fffffff)},
		{"just over", rpctest.U32(1<<31 | uint32(small.MaxRecord) + 1)},
		{"not last fragment", rpctest.U32(0x7fffffff)},
		// fragments that pass one by one but add up to too much
		{"fragments add up", append(rpctest.Frag(make([]byte, small.MaxRecord/2), false), rpctest.U32(1<<31|uint32(small.MaxRecord/2+4))...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, small)
			bystander := rpctest.Dial(t, ts.addr)
			bystander.Call(1, testProg, 1, procNull, nil)
			bystander.ExpectReply(1)

			c := rpctest.Dial(t, ts.addr)
			c.WriteRaw(tc.send)
			c.ExpectClosed()
			if st := ts.Stats(); st.RejectedConns != 1 || st.MaxBytes > int64(small.MaxRecord) {
				t.Fatalf("stats %+v: want one rejected connection, no more than MaxRecord reserved", st)
			}
			// Other connections, old and new, are still served.
			bystander.Call(2, testProg, 1, procNull, nil)
			bystander.ExpectReply(2)
			ts.echo(t)
		})
	}
}

func TestMultiFragmentRecords(t *testing.T) {
	ts := startServer(t, small)
	c := rpctest.Dial(t, ts.addr)
	payload := bytes.Repeat([]byte("0123456789abcdef"), 60) // 960 bytes
	msg := rpctest.CallMsg(5, testProg, 2, procEcho, rpctest.None(), opaque(payload))
	for _, split := range []int{1, 3, 4, 7, 100, len(msg) - 1} {
		var stream []byte
		for off := 0; off < len(msg); off += split {
			end := min(off+split, len(msg))
			stream = append(stream, rpctest.Frag(msg[off:end], end == len(msg))...)
		}
		c.WriteRaw(stream)
		if body := c.ExpectReply(5); !bytes.Equal(body, opaque(payload)) {
			t.Fatalf("split %d: echo returned %d bytes, want %d", split, len(body), len(payload)+4)
		}
	}
	// Empty fragments before the data are allowed.
	c.WriteRaw(append(append(rpctest.Frag(nil, false), rpctest.Frag(nil, false)...), rpctest.Frag(msg, true)...))
	c.ExpectReply(5)
}

func TestGarbageRecordsAreDropped(t *testing.T) {
	ts := startServer(t, small)
	c := rpctest.Dial(t, ts.addr)
	garbage := [][]byte{
		{1},                   // shorter than an XID
		{0, 0, 0, 9, 0, 0, 0}, // XID and half a message type
		rpctest.U32(42),       // XID only
		append(rpctest.U32(1), rpctest.U32(7)...), // message type 7
		// a call header cut before its procedure number
		rpctest.CallMsg(3, testProg, 1, procNull, rpc.OpaqueAuth{Flavor: rpc.AuthSys, Body: make([]byte, 40)}, nil)[:22],
		bytes.Repeat([]byte{0xff}, 333),
	}
	for _, g := range garbage {
		c.Send(g)
	}
	// The connection is still in step: the next call is answered, and is
	// the first thing answered.
	c.Call(77, testProg, 1, procNull, nil)
	c.ExpectReply(77)
	// Calls run concurrently, so the count may lag the reply.
	rpctest.Eventually(t, "every garbage record to be dropped", func() bool { return ts.Stats().DroppedCalls == int64(len(garbage)) })
}

func TestGarbageStreamClosesConnection(t *testing.T) {
	ts := startServer(t, small)
	c := rpctest.Dial(t, ts.addr)
	// Text where a record mark belongs: "GET " claims a 1.2 GB fragment.
	c.WriteRaw([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	c.ExpectClosed()
	ts.echo(t)
}

func TestRPCVersionMismatch(t *testing.T) {
	ts := startServer(t, small)
	c := rpctest.Dial(t, ts.addr)
	for _, v := range []uint32{0, 1, 3, 0xffffffff} {
		msg := rpctest.CallMsg(0x1000+v, testProg, 1, procNull, rpctest.None(), nil)
		binary.BigEndian.PutUint32(msg[8:], v)
		c.Send(msg)
		re := c.ExpectError(0x1000 + v)
		if !re.Denied || !re.Mismatch || re.Low != 2 || re.Hi != 2 {
			t.Fatalf("RPC version %d: got %+v, want MSG_DENIED RPC_MISMATCH 2-2", v, re)
		}
	}
}

func TestProgramAndProcedureErrors(t *testing.T) {
	ts := startServer(t, small)
	c := rpctest.Dial(t, ts.addr)
	for _, tc := range []struct {
		name             string
		prog, vers, proc uint32
		args             []byte
		want             rpc.AcceptStat
		low, high        uint32
	}{
		{"unknown program", 0x2fffffff, 1, 0, nil, rpc.ProgUnavail, 0, 0},
		{"version too low", testProg, 0, 0, nil, rpc.ProgMismatch, testLow, testHigh},
		{"version too high", testProg, 3, 0, nil, rpc.ProgMismatch, testLow, testHigh},
		{"portmap version", portmap.Prog, 5, 0, nil, rpc.ProgMismatch, 2, 4},
		{"unknown procedure", testProg, 1, 99, nil, rpc.ProcUnavail, 0, 0},
		{"portmap unknown procedure", portmap.Prog, 2, 99, nil, rpc.ProcUnavail, 0, 0},
		{"truncated arguments", testProg, 1, procEcho, rpctest.U32(8), rpc.GarbageArgs, 0, 0},
		{"length beyond bound", testProg, 1, procEcho, rpctest.U32(5000), rpc.GarbageArgs, 0, 0},
		{"portmap truncated GETPORT", portmap.Prog, 2, portmap.ProcGetport, rpctest.U32(100003), rpc.GarbageArgs, 0, 0},
		{"handler panic", testProg, 1, procPanic, nil, rpc.SystemErr, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.Call(9, tc.prog, tc.vers, tc.proc, tc.args)
			re := c.ExpectError(9)
			if re.Denied || re.Accept != tc.want || re.Low != tc.low || re.Hi != tc.high {
				t.Fatalf("got %+v, want MSG_ACCEPTED %v (versions %d-%d)", re, tc.want, tc.low, tc.high)
			}
		})
	}
	// After all that, the connection is still served.
	c.Call(10, testProg, 1, procNull, nil)
	c.ExpectReply(10)
}

func authSysBody(stamp uint32, machine string, uid, gid uint32, gids []uint32) []byte {
	return rpc.AuthSysCred{Stamp: stamp, Machine: machine, UID: uid, GID: gid, GIDs: gids}.Opaque().Body
}

func TestBadCredentials(t *testing.T) {
	ts := startServer(t, small)
	c := rpctest.Dial(t, ts.addr)
	good := authSysBody(1, "client", 1000, 1000, []uint32{1, 2})
	tooManyGroups := authSysBody(1, "client", 1000, 1000, make([]uint32, 17))
	longName := authSysBody(1, string(bytes.Repeat([]byte("m"), 256)), 1000, 1000, nil)
	for _, tc := range []struct {
		name string
		cred rpc.OpaqueAuth
	}{
		{"unknown flavor", rpc.OpaqueAuth{Flavor: 200}},
		{"RPCSEC_GSS", rpc.OpaqueAuth{Flavor: 6, Body: make([]byte, 20)}},
		{"AUTH_SYS empty", rpc.OpaqueAuth{Flavor: rpc.AuthSys}},
		{"AUTH_SYS truncated", rpc.OpaqueAuth{Flavor: rpc.AuthSys, Body: good[:len(good)-4]}},
		{"AUTH_SYS trailing bytes", rpc.OpaqueAuth{Flavor: rpc.AuthSys, Body: append(append([]byte(nil), good...), 0, 0, 0, 0)}},
		{"AUTH_SYS 17 groups", rpc.OpaqueAuth{Flavor: rpc.AuthSys, Body: tooManyGroups}},
		{"AUTH_SYS 256-byte machine name", rpc.OpaqueAuth{Flavor: rpc.AuthSys, Body: longName}},
		{"AUTH_SYS absurd group count", rpc.OpaqueAuth{Flavor: rpc.AuthSys, Body: append(authSysBody(1, "c", 1, 1, nil)[:16], 0xff, 0xff, 0xff, 0xff)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.Send(rpctest.CallMsg(11, testProg, 1, procNull, tc.cred, nil))
			re := c.ExpectError(11)
			if !re.Denied || re.Mismatch || re.Auth != rpc.AuthBadCred {
				t.Fatalf("got %+v, want MSG_DENIED AUTH_ERROR AUTH_BADCRED", re)
			}
		})
	}
	// A credential or verifier that is too long, or runs past the
	// message, once the caller is known by XID: answered, not silence.
	long := rpctest.CallMsg(13, testProg, 1, procNull, rpc.OpaqueAuth{Flavor: rpc.AuthSys, Body: make([]byte, 404)}, nil)
	longVerf := rpctest.CallMsg(13, testProg, 1, procNull, rpctest.None(), nil)
	longVerf = append(append(longVerf[:len(longVerf)-4], rpctest.U32(1000)...), make([]byte, 1000)...)
	for _, tc := range []struct {
		name string
		msg  []byte
	}{
		{"credential of 404 bytes", long},
		{"credential of 1 GB", append(rpctest.CallMsg(13, testProg, 1, procNull, rpctest.None(), nil)[:28], rpctest.U32(1<<30)...)},
		{"credential cut short", long[:100]},
		{"credential length cut short", long[:30]},
		{"verifier of 1000 bytes", longVerf},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.Send(tc.msg)
			re := c.ExpectError(13)
			if !re.Denied || re.Mismatch || re.Auth != rpc.AuthBadCred {
				t.Fatalf("got %+v, want MSG_DENIED AUTH_ERROR AUTH_BADCRED", re)
			}
		})
	}
	c.Send(rpctest.CallMsg(12, testProg, 1, procNull, rpc.OpaqueAuth{Flavor: rpc.AuthSys, Body: good}, nil))
	c.ExpectReply(12)
}

func TestReplyMessageIsIgnored(t *testing.T) {
	ts := startServer(t, small)
	c := rpctest.Dial(t, ts.addr)
	w := xdr.NewWriter(64)
	rpc.WriteAccepted(w, 500, rpc.Success)
	c.Send(w.Bytes())
	w = xdr.NewWriter(64)
	rpc.WriteAuthError(w, 501, rpc.AuthTooWeak)
	c.Send(w.Bytes())
	c.Call(502, testProg, 1, procNull, nil)
	c.ExpectReply(502) // the first record back answers the call
	rpctest.Eventually(t, "both replies to be dropped", func() bool { return ts.Stats().DroppedCalls == 2 })
}

// A slow call must not hold up a fast one behind it on the same
// connection: the fast reply arrives while the slow call is still
// blocked in its handler (it cannot return until the test lets it).
func TestSlowCallDoesNotBlockFastCall(t *testing.T) {
	ts := startServer(t, small)
	c := rpctest.Dial(t, ts.addr)
	c.Call(100, testProg, 1, procBlock, rpctest.U32(1))
	if id := <-ts.h.started; id != 1 {
		t.Fatalf("started %d", id)
	}
	c.Call(101, testProg, 1, procEcho, opaque([]byte("fast")))
	if body := c.ExpectReply(101); !bytes.Equal(body, opaque([]byte("fast"))) {
		t.Fatalf("fast reply %x", body)
	}
	c.Call(102, testProg, 1, procBig, nil)
	if body := c.ExpectReply(102); len(body) != bigReply {
		t.Fatalf("big reply of %d bytes", len(body))
	}
	ts.h.release(1)
	if body := c.ExpectReply(100); !bytes.Equal(body, rpctest.U32(1)) {
		t.Fatalf("slow reply %x", body)
	}
}

// A lone brief call runs on the goroutine that read it; a call that is not
// brief, or one that arrives while another of its connection is in
// flight, runs on a worker, so reading goes on while it runs.
func TestLoneBriefCallRunsOnReader(t *testing.T) {
	ts := startServer(t, small)
	c := rpctest.Dial(t, ts.addr)
	where := func(xid, proc uint32) uint32 {
		t.Helper()
		c.Call(xid, testProg, 1, proc, nil)
		return binary.BigEndian.Uint32(c.ExpectReply(xid))
	}
	if got := where(1, procWhere); got != 1 {
		t.Fatalf("a lone brief call ran on a worker")
	}
	if got := where(2, procWhereNotBrief); got != 0 {
		t.Fatalf("a call that is not brief ran on the reader")
	}
	c.Call(3, testProg, 1, procBlock, rpctest.U32(3))
	<-ts.h.started
	if got := where(4, procWhere); got != 0 {
		t.Fatalf("a brief call ran on the reader while another call of its connection was in flight")
	}
	ts.h.release(3)
	c.ExpectReply(3)
	// The worker gives back its slot just after the reply is out.
	xid := uint32(5)
	rpctest.Eventually(t, "a lone brief call to run on the reader again", func() bool {
		xid++
		return where(xid, procWhere) == 1
	})
}

// A client that pipelines far more calls than the limits allow and never
// reads a reply makes the server stop reading from it at the
// per-connection limit; what the server holds stays within its limits, and
// other clients are served meanwhile.
func TestPipeliningIsBounded(t *testing.T) {
	ts := startServer(t, small)
	greedy := rpctest.DialFrom(t, "127.0.0.2", ts.addr) // others share no client budget with it
	const n = 200
	// Calls that block, then calls with big replies the client never
	// reads: neither kind may let more than PerConnInflight in at once.
	var stream []byte
	for i := range uint32(n) {
		if i < 2 {
			stream = append(stream, rpctest.Frag(rpctest.CallMsg(i, testProg, 1, procBlock, rpctest.None(), rpctest.U32(1000+i)), true)...)
		} else {
			stream = append(stream, rpctest.Frag(rpctest.CallMsg(i, testProg, 1, procBig, rpctest.None(), opaque(make([]byte, 1000))), true)...)
		}
	}
	// Written from a goroutine: the server stops reading, so the write
	// never completes while the client holds out.
	go greedy.Write(stream)
	<-ts.h.started
	<-ts.h.started
	rpctest.Eventually(t, "the greedy connection to reach its limit", func() bool {
		st := ts.Stats()
		return st.Calls+st.Replying == small.PerConnInflight
	})

	// Other clients are served while the greedy one sits at its limit.
	other := rpctest.Dial(t, ts.addr)
	for i := range uint32(20) {
		other.Call(i, testProg, 1, procEcho, opaque([]byte("x")))
		other.ExpectReply(i)
	}
	ts.echo(t)

	// Let the blocked calls go: their replies and the big ones fill the
	// socket buffers, and the greedy client still reads nothing.
	ts.h.release(1000)
	ts.h.release(1001)
	rpctest.Eventually(t, "the greedy connection to be stuck at its limit again", func() bool {
		st := ts.Stats()
		return st.Calls+st.Replying == small.PerConnInflight
	})
	other.Call(99, testProg, 1, procNull, nil)
	other.ExpectReply(99)

	st := ts.Stats()
	if st.MaxConnCalls > small.PerConnInflight || st.MaxCalls > small.Inflight {
		t.Fatalf("calls in flight reached %d on one connection, %d in all; limits %d, %d", st.MaxConnCalls, st.MaxCalls, small.PerConnInflight, small.Inflight)
	}
	recSize := int64(len(rpctest.CallMsg(0, testProg, 1, procBig, rpctest.None(), opaque(make([]byte, 1000)))))
	if st.MaxBytes > small.InflightBytes || st.MaxBytes > int64(small.PerConnInflight+1)*recSize {
		t.Fatalf("reserved up to %d bytes of calls: limit %d, and %d calls of %d bytes", st.MaxBytes, small.InflightBytes, small.PerConnInflight, recSize)
	}
}

// Connections that are open but send nothing (every mounted client keeps
// one) must not use up the server-wide call slots.
func TestIdleConnectionsDoNotUseCallSlots(t *testing.T) {
	ts := startServer(t, small)
	for range 2 * small.Inflight {
		rpctest.Dial(t, ts.addr)
	}
	rpctest.Eventually(t, "the idle connections to be accepted", func() bool { return ts.Stats().Conns == 2*small.Inflight })
	c := rpctest.Dial(t, ts.addr)
	c.SetDeadline(time.Now().Add(10 * time.Second)) // fail rather than hang
	c.Call(1, testProg, 1, procNull, nil)
	c.ExpectReply(1)
	rpctest.Eventually(t, "no call slot to be held with no call in flight", func() bool { return ts.Stats().Calls == 0 })
}

// Connections that send part of a call and stall hold no call slot:
// however many there are, other clients are served.
func TestStalledRecordsHoldNoCallSlots(t *testing.T) {
	ts := startServer(t, small)
	const n = 3 * 8 // three times Inflight
	for range n {
		c := rpctest.Dial(t, ts.addr)
		c.WriteRaw(append(rpctest.U32(1<<31|1000), "only this"...))
	}
	rpctest.Eventually(t, "the stalled records to be reserved", func() bool { return ts.Stats().Bytes == n*1000 })
	c := rpctest.Dial(t, ts.addr)
	c.SetDeadline(time.Now().Add(10 * time.Second)) // fail rather than hang
	for i := range uint32(2 * n) {
		c.Call(i, testProg, 1, procEcho, opaque(make([]byte, 1000)))
		c.ExpectReply(i)
	}
	if st := ts.Stats(); st.MaxCalls > 2 {
		t.Fatalf("stalled connections held call slots: %+v", st)
	}
}

// A connection that stalls half-way through a call is closed once the
// record timeout passes, giving back the budget its header reserved.
func TestStalledRecordIsClosed(t *testing.T) {
	lim := small
	lim.RecordTimeout = 100 * time.Millisecond
	ts := startServer(t, lim)
	stalled := rpctest.Dial(t, ts.addr)
	stalled.SetDeadline(time.Now().Add(20 * time.Second)) // fail rather than hang
	stalled.WriteRaw(append(rpctest.U32(1<<31|1000), "only this"...))
	stalled.ExpectClosed()
	rpctest.Eventually(t, "the stalled record's budget to come back", func() bool { return ts.Stats().Bytes == 0 })
	if st := ts.Stats(); st.RejectedConns != 1 {
		t.Fatalf("rejected connections %d, want 1", st.RejectedConns)
	}
	// A connection waiting between calls is not timed out.
	idle := rpctest.Dial(t, ts.addr)
	idle.SetDeadline(time.Now().Add(20 * time.Second))
	idle.Call(1, testProg, 1, procNull, nil)
	idle.ExpectReply(1)
	time.Sleep(3 * lim.RecordTimeout)
	idle.Call(2, testProg, 1, procNull, nil)
	idle.ExpectReply(2)
}

// One client address cannot open more than PerClientConns connections;
// the next is refused, and served again once one closes.
func TestPerClientConnectionCap(t *testing.T) {
	lim := small
	lim.PerClientConns = 3
	ts := startServer(t, lim)
	var open []*rpctest.Conn
	for range lim.PerClientConns {
		open = append(open, rpctest.Dial(t, ts.addr))
	}
	rpctest.Eventually(t, "the connections to be accepted", func() bool { return ts.Stats().Conns == lim.PerClientConns })
	extra := rpctest.Dial(t, ts.addr)
	extra.SetDeadline(time.Now().Add(20 * time.Second))
	extra.ExpectClosed()
	for i, c := range open {
		c.SetDeadline(time.Now().Add(20 * time.Second))
		c.Call(uint32(i), testProg, 1, procNull, nil)
		c.ExpectReply(uint32(i))
	}
	open[0].Close()
	rpctest.Eventually(t, "the closed connection to be forgotten", func() bool { return ts.Stats().Conns == lim.PerClientConns-1 })
	ts.echo(t)
}

// Many clients each half-way through sending a large call, together
// claiming more than the byte budget, must all be served in the end: a
// reader never waits for budget while holding some, so they cannot
// deadlock on it.
func TestHalfSentRecordsDoNotDeadlock(t *testing.T) {
	lim := small
	lim.InflightBytes = 2 * int64(lim.MaxRecord)
	lim.PerClientBytes = lim.InflightBytes // all from one address
	ts := startServer(t, lim)
	const clients = 6
	msg := rpctest.CallMsg(1, testProg, 1, procNull, rpctest.None(), make([]byte, lim.MaxRecord-100))
	rec := rpctest.Frag(msg, true)
	conns := make([]*rpctest.Conn, clients)
	for i := range conns {
		conns[i] = rpctest.Dial(t, ts.addr)
		conns[i].SetDeadline(time.Now().Add(20 * time.Second)) // fail rather than hang
		conns[i].WriteRaw(rec[:len(rec)/2])
	}
	rpctest.Eventually(t, "the budget to be taken", func() bool { return ts.Stats().Bytes >= int64(2*len(msg)) })
	// Write the second halves from goroutines: readers still waiting for
	// budget do not read them yet.
	for _, c := range conns {
		go c.Write(rec[len(rec)/2:])
	}
	for _, c := range conns {
		c.ExpectReply(1)
	}
	if st := ts.Stats(); st.MaxBytes > lim.InflightBytes {
		t.Fatalf("reserved %d bytes, budget %d", st.MaxBytes, lim.InflightBytes)
	}
}

// A server-wide byte budget smaller than the largest record, or unset
// per-connection limits, must not wedge the server.
func TestPartialLimitsAreCompleted(t *testing.T) {
	ts := startServer(t, Limits{MaxRecord: 8 << 10, InflightBytes: 100})
	c := rpctest.Dial(t, ts.addr)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Call(1, testProg, 1, procEcho, opaque(make([]byte, 1000)))
	c.ExpectReply(1)
	ts.init() // synchronises with the Serve goroutine that ran it
	if ts.Limits.PerConnInflight != DefaultLimits.PerConnInflight || ts.Limits.InflightBytes < 8<<10 {
		t.Fatalf("limits %+v", ts.Limits)
	}
}

// serveTest serves the test handler, with no cleanup: the test shuts the
// server down itself. served gets Serve's result.
func serveTest(t *testing.T) (*Server, *testHandler, net.Listener, chan error) {
	h := newTestHandler()
	s := &Server{Handler: h, Log: rpctest.Logger(t), Limits: small}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	return s, h, l, served
}

// Shutdown lets a call in flight finish and its reply go out, refuses new
// connections meanwhile, then closes the connection.
func TestShutdownDrainsCallsInFlight(t *testing.T) {
	s, h, l, served := serveTest(t)
	c := rpctest.Dial(t, l.Addr().String())
	c.Call(1, testProg, 1, procBlock, rpctest.U32(5))
	<-h.started
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve returned %v", err)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a call in flight", err)
	default:
	}
	if nc, err := net.Dial("tcp", l.Addr().String()); err == nil {
		nc.Close()
		t.Fatal("a new connection was accepted during shutdown")
	}
	h.release(5)
	if body := c.ExpectReply(1); !bytes.Equal(body, rpctest.U32(5)) {
		t.Fatalf("reply %x", body)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	c.ExpectClosed()
}

// Shutdown with a deadline does not wait forever for a stuck call.
func TestShutdownDeadline(t *testing.T) {
	s, h, l, _ := serveTest(t)
	c := rpctest.Dial(t, l.Addr().String())
	c.Call(1, testProg, 1, procBlock, rpctest.U32(5)) // never released: ctx ends it
	<-h.started
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown: %v", err)
	}
	// The stuck call may get its SYSTEM_ERR out before the close.
	for {
		_, err := c.ReadRecord()
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection still open: %v", err)
		}
		break
	}
}

func TestUDP(t *testing.T) {
	ts := startServer(t, small)
	c, err := net.Dial("udp", ts.udp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	for _, g := range [][]byte{{}, {1, 2, 3}, bytes.Repeat([]byte{0xfe}, 2000)} {
		c.Write(g)
	}
	msg := rpctest.CallMsg(33, portmap.Prog, 2, portmap.ProcGetport, rpctest.None(), append(append(rpctest.U32(testProg), rpctest.U32(1)...), append(rpctest.U32(portmap.IPProtoTCP), rpctest.U32(0)...)...))
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	r := xdr.NewReader(buf[:n])
	if xid, err := rpc.ParseReply(r); err != nil || xid != 33 {
		t.Fatalf("reply xid %d: %v", xid, err)
	}
	if port := r.Uint32(); port != 1234 || r.Remaining() != 0 {
		t.Fatalf("GETPORT returned %d", port)
	}
	if st := ts.Stats(); st.DroppedCalls != 3 {
		t.Fatalf("dropped %d datagrams, want 3", st.DroppedCalls)
	}
}

// Workers outlive calls (a burst of concurrent calls leaves idle workers
// behind, which serve later calls) and end at Shutdown: no goroutine is
// left behind.
func TestWorkersEndAtShutdown(t *testing.T) {
	before := runtime.NumGoroutine()
	s, h, l, served := serveTest(t)
	c := rpctest.Dial(t, l.Addr().String())
	const n = 4 // small.PerConnInflight
	for i := uint32(1); i <= n; i++ {
		c.Call(i, testProg, 1, procBlock, rpctest.U32(i))
	}
	for range n {
		<-h.started
	}
	during := runtime.NumGoroutine()
	for i := uint32(1); i <= n; i++ {
		h.release(i)
	}
	for range n {
		c.Reply()
	}
	// The burst's workers stay, idle, and take later calls: as many
	// goroutines as during the burst, no more.
	for i := uint32(100); i < 120; i++ {
		c.Call(i, testProg, 1, procNull, nil)
		c.ExpectReply(i)
	}
	if now := runtime.NumGoroutine(); now != during {
		t.Errorf("%d goroutines after the burst's calls ended, %d during it: the workers did not stay, or were not reused", now, during)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-served
	rpctest.Eventually(t, "workers to end", func() bool { return runtime.NumGoroutine() <= before })
}
