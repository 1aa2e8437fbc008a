package rpcserver

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/rwxnfs/rwxnfs/internal/rpctest"
	"github.com/rwxnfs/rwxnfs/pkg/portmap"
)

// Abusive clients beside a well-behaved one: whatever an abuser from other
// addresses holds, the well-behaved client (127.0.0.1) keeps being
// served. Deadlines are generous; they only turn a starved client into a
// failure.

// served makes n ECHO calls on one connection from src and fails the test
// if any is not answered.
func (ts *testServer) served(t *testing.T, src string, n int) {
	t.Helper()
	c := rpctest.DialFrom(t, src, ts.addr)
	c.SetDeadline(time.Now().Add(20 * time.Second))
	for i := range uint32(n) {
		c.Call(i, testProg, 1, procEcho, opaque([]byte("well behaved")))
		c.ExpectReply(i)
	}
	c.Close()
}

// A few connections from one address pipeline calls with big replies and
// never read them. Their unsent replies are held against that client:
// it stops getting calls read at PerClientInflight, and holds no
// server-wide call slot, so others are served.
func TestUnreadRepliesHoldOnlyTheirClient(t *testing.T) {
	lim := Limits{MaxRecord: 64 << 10, PerConnInflight: 4, Inflight: 16, InflightBytes: 1 << 20, PerClientInflight: 6}
	ts := startServer(t, lim)
	var stream []byte
	for i := range uint32(200) { // 50 MiB of replies: more than any socket buffers
		stream = append(stream, rpctest.Frag(rpctest.CallMsg(i, testProg, 1, procBig, rpctest.None(), nil), true)...)
	}
	for range 4 { // 4 connections × PerConnInflight: every server-wide slot
		c := rpctest.DialFrom(t, "127.0.0.2", ts.addr)
		go c.Write(stream) // never completes while the server stops reading
	}
	rpctest.Eventually(t, "the abuser to be stuck", func() bool {
		st := ts.Stats()
		return st.Calls+st.Replying >= lim.PerClientInflight
	})
	ts.served(t, "127.0.0.1", 50)
	ts.served(t, "127.0.0.3", 50)
	st := ts.Stats()
	if st.Calls+st.Replying > lim.PerClientInflight+1 || st.MaxCalls > lim.Inflight {
		t.Fatalf("an abuser stuck at its limit of %d holds %d calls served and %d replying (max %d); %+v", lim.PerClientInflight, st.Calls, st.Replying, st.MaxCalls, st)
	}
}

// Stalled senders from many addresses (64: IPv6 makes addresses cheap)
// each claim big records with a few bytes, on several connections: far
// more than the server-wide byte budget, though each address stays
// within its own. The claims that hold budget others wait for are taken
// back (StallReclaim), so a well-behaved client keeps being served. (Before
// that, the claims held the budget for RecordTimeout: 17 addresses
// filled it.)
func TestStalledClaimsFromManyClients(t *testing.T) {
	lim := Limits{MaxRecord: 64 << 10, PerConnInflight: 4, Inflight: 16, InflightBytes: 1 << 20, StallReclaim: time.Second} // PerClientBytes: 64 KiB
	ts := startServer(t, lim)
	claim := append(rpctest.U32(1<<31|(60<<10)), "a few bytes, then nothing"...)
	const addrs, perAddr = 64, 3
	var abusers []*rpctest.Conn
	for a := range addrs {
		for range perAddr { // 64 × 3 × 60 KiB: more than ten times the budget
			c := rpctest.DialFrom(t, fmt.Sprintf("127.0.4.%d", a+1), ts.addr)
			c.WriteRaw(claim)
			abusers = append(abusers, c)
		}
	}
	rpctest.Eventually(t, "the abusers to hold the budget", func() bool { return ts.Stats().Bytes > lim.InflightBytes-60<<10 })
	ts.served(t, "127.0.0.1", 50)
	if st := ts.Stats(); st.StalledClaims == 0 || st.MaxBytes > lim.InflightBytes {
		t.Fatalf("stalled claims: %+v", st)
	}
	// A reclaimed connection is closed.
	closed := 0
	for _, c := range abusers {
		c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err != nil && !isTimeout(err) {
			closed++
		}
	}
	if closed == 0 {
		t.Fatal("no abuser's connection was closed")
	}
}

// Many idle connections from many addresses reach MaxConns: a new client
// is admitted by closing the connection idle longest. A connection with
// a call in flight is never reclaimed; with none idle the new one is
// refused, and connected clients keep being served.
func TestConnectionCapReclaimsIdle(t *testing.T) {
	lim := small
	lim.MaxConns = 8
	ts := startServer(t, lim)
	user := rpctest.DialFrom(t, "127.0.0.1", ts.addr) // connected, and used now and then
	user.SetDeadline(time.Now().Add(time.Minute))
	xid := uint32(0)
	use := func() {
		t.Helper()
		xid++
		user.Call(xid, testProg, 1, procNull, nil)
		user.ExpectReply(xid)
	}
	use()
	var idle []*rpctest.Conn
	for i := range lim.MaxConns - 1 {
		idle = append(idle, rpctest.DialFrom(t, fmt.Sprintf("127.0.1.%d", i+1), ts.addr))
		rpctest.Eventually(t, "the connection to be accepted", func() bool { return ts.Stats().Conns == i+2 })
	}
	for i := range 20 { // more idle connections: each one pushes out the oldest
		use() // the user's connection is in use, so never the oldest idle
		c := rpctest.DialFrom(t, fmt.Sprintf("127.0.2.%d", i+1), ts.addr)
		idle[0].SetDeadline(time.Now().Add(20 * time.Second))
		idle[0].ExpectClosed()
		idle = append(idle[1:], c)
		rpctest.Eventually(t, "the new connection to be accepted", func() bool {
			return ts.Stats().Conns == lim.MaxConns && ts.Stats().ReclaimedConns == int64(i+1)
		})
	}
	use()
	// Busy connections are never reclaimed: fill the cap with calls in
	// flight, and a new connection is refused instead.
	for i, c := range idle {
		c.SetDeadline(time.Now().Add(time.Minute))
		c.Call(1, testProg, 1, procBlock, rpctest.U32(uint32(500+i)))
		<-ts.h.started
	}
	xid++
	user.Call(xid, testProg, 1, procBlock, rpctest.U32(999))
	<-ts.h.started
	extra := rpctest.DialFrom(t, "127.0.3.1", ts.addr)
	extra.SetDeadline(time.Now().Add(20 * time.Second))
	extra.ExpectClosed()
	ts.h.release(999)
	user.ExpectReply(xid)
	if st := ts.Stats(); st.Conns > lim.MaxConns {
		t.Fatalf("%d connections open, cap %d", st.Conns, lim.MaxConns)
	}
}

// A connection with no call in flight for IdleTimeout is closed; one
// whose call is being served that long is not, and gets its reply.
func TestIdleConnectionsAreClosed(t *testing.T) {
	lim := small
	lim.IdleTimeout = 200 * time.Millisecond
	ts := startServer(t, lim)
	busy := rpctest.DialFrom(t, "127.0.0.1", ts.addr)
	busy.SetDeadline(time.Now().Add(time.Minute))
	busy.Call(1, testProg, 1, procBlock, rpctest.U32(1))
	<-ts.h.started
	idle := rpctest.DialFrom(t, "127.0.0.2", ts.addr)
	idle.Call(2, testProg, 1, procNull, nil)
	idle.ExpectReply(2)
	idle.SetDeadline(time.Now().Add(20 * time.Second))
	idle.ExpectClosed()
	// The busy connection has been busy since before the idle one
	// opened: longer than IdleTimeout.
	ts.h.release(1)
	busy.ExpectReply(1)
	if st := ts.Stats(); st.ReclaimedConns == 0 {
		t.Fatalf("the idle connection closed, but not counted: %+v", st)
	}
}

// A flood of portmapper DUMP calls over UDP, as a reflector's forged calls
// would come: the replies to that source stay within its byte rate, and
// another source is answered meanwhile.
func TestUDPRepliesAreRateLimitedPerSource(t *testing.T) {
	lim := small
	lim.UDPBytesPerSource = 1000 // burst 4000
	ts := startServer(t, lim)
	dial := func(src string) *net.UDPConn {
		c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(src)}, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(ts.udp)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	flood := dial("127.0.0.2")
	dump := rpctest.CallMsg(1, portmap.Prog, 2, portmap.ProcDump, rpctest.None(), nil)
	start := time.Now()
	const calls = 500
	got, replies := 0, 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			flood.SetReadDeadline(time.Now().Add(time.Second))
			n, err := flood.Read(buf)
			if err != nil {
				return
			}
			got += n
			replies++
		}
	}()
	for range calls {
		if _, err := flood.Write(dump); err != nil {
			t.Fatal(err)
		}
	}
	// Another source is answered; like any RPC client over UDP it sends
	// again when no reply comes (the flood may fill the socket's buffer
	// and the kernel drop its datagram).
	other := dial("127.0.0.3")
	answered := false
	for try := 0; try < 40 && !answered; try++ {
		if _, err := other.Write(dump); err != nil {
			t.Fatal(err)
		}
		other.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		_, err := other.Read(make([]byte, 1500))
		answered = err == nil
	}
	if !answered {
		t.Fatal("another source is not answered")
	}
	<-done
	elapsed := time.Since(start).Seconds()
	replySize := got / max(replies, 1)
	if bound := 4000 + int(1000*elapsed) + replySize; got > bound || replies == calls {
		t.Fatalf("%d replies, %d bytes, to one source in %.1fs: bound %d bytes", replies, got, elapsed, bound)
	}
	if ts.Stats().UDPDropped == 0 {
		t.Fatal("nothing dropped")
	}
}
