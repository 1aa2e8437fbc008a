// Package rpcserver is the ONC RPC transport of nfsd: it accepts TCP (and UDP)
// connections, reads record-marked calls, checks RPC version, program,
// version and credential, and runs each call on its own goroutine so that
// many calls on one connection are served at once, replies going back in
// whatever order they finish, matched by XID. How much a client may pipeline
// is bounded per connection and for the whole server.
package rpcserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/rwxnfs/rwxnfs/pkg/rpc"
	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// Observer is told about connections and finished calls (for metrics).
type Observer interface {
	ConnOpened()
	ConnClosed()
	CallDone(prog, vers, proc uint32, d time.Duration, err error)
}

// Limits bound what clients can make the server hold.
type Limits struct {
	MaxRecord       int   // largest call accepted, bytes
	PerConnInflight int   // calls in flight on one connection
	Inflight        int   // calls in flight in the whole server
	InflightBytes   int64 // bytes of calls in flight in the whole server
	// RecordTimeout is how long a call may take to arrive once its first
	// fragment header has: a connection that stalls half-way through a
	// record is closed, giving back the budget its header reserved.
	RecordTimeout time.Duration
	// PerClientConns caps the open connections from one IP address, so
	// one host cannot tie up the byte budget with stalled records on
	// many connections. A Linux client uses one per server and mount
	// options (nconnect: at most 16).
	PerClientConns int
}

// DefaultLimits fit a 1 MiB wsize with headroom.
var DefaultLimits = Limits{
	MaxRecord:       1<<20 + 64<<10,
	PerConnInflight: 64,
	Inflight:        256,
	InflightBytes:   256 << 20,
	RecordTimeout:   2 * time.Minute,
	PerClientConns:  64,
}

// withDefaults fills unset limits from DefaultLimits and makes the byte
// budget hold at least one largest record: a zero PerConnInflight or
// Inflight would block every connection for good, and a record larger than
// the whole byte budget could never be reserved.
func (l Limits) withDefaults() Limits {
	if l.MaxRecord <= 0 {
		l.MaxRecord = DefaultLimits.MaxRecord
	}
	if l.PerConnInflight <= 0 {
		l.PerConnInflight = DefaultLimits.PerConnInflight
	}
	if l.Inflight <= 0 {
		l.Inflight = DefaultLimits.Inflight
	}
	if l.InflightBytes <= 0 {
		l.InflightBytes = DefaultLimits.InflightBytes
	}
	if l.RecordTimeout <= 0 {
		l.RecordTimeout = DefaultLimits.RecordTimeout
	}
	if l.PerClientConns <= 0 {
		l.PerClientConns = DefaultLimits.PerClientConns
	}
	l.InflightBytes = max(l.InflightBytes, int64(l.MaxRecord))
	return l
}

// Stats is what the server holds for its clients at one moment, and the
// most it has held at once: the limits are the bounds on both.
type Stats struct {
	Conns         int   // open connections
	Calls         int   // calls being read or served
	Bytes         int64 // bytes of call records reserved
	MaxCalls      int   // high-water mark of Calls
	MaxBytes      int64 // high-water mark of Bytes
	MaxConnCalls  int   // high-water mark of calls on any one connection
	DroppedCalls  int64 // malformed messages dropped without a reply
	RejectedConns int64 // connections closed for an oversized record, a stalled record or too many from one client
}

// Server serves RPC calls to one Handler (usually an rpc.Mux).
type Server struct {
	Handler  rpc.Handler
	Log      *slog.Logger
	Observer Observer
	Limits   Limits

	initOnce sync.Once
	calls    *semaphore.Weighted
	bytes    *semaphore.Weighted

	statsMu sync.Mutex
	stats   Stats

	mu        sync.Mutex
	listeners map[io.Closer]struct{}
	conns     map[*conn]struct{}
	perIP     map[netip.Addr]int // open connections by client address
	closing   atomic.Bool
	connWG    sync.WaitGroup
	baseCtx   context.Context
	cancel    context.CancelFunc
}

func (s *Server) init() {
	s.initOnce.Do(func() {
		if s.Log == nil {
			s.Log = slog.Default()
		}
		s.Limits = s.Limits.withDefaults()
		s.calls = semaphore.NewWeighted(int64(s.Limits.Inflight))
		s.bytes = semaphore.NewWeighted(s.Limits.InflightBytes)
		s.listeners = make(map[io.Closer]struct{})
		s.conns = make(map[*conn]struct{})
		s.perIP = make(map[netip.Addr]int)
		s.baseCtx, s.cancel = context.WithCancel(context.Background())
	})
}

// Stats returns the server's current accounting.
func (s *Server) Stats() Stats {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	return s.stats
}

func (s *Server) count(f func(st *Stats)) {
	s.statsMu.Lock()
	f(&s.stats)
	s.statsMu.Unlock()
}

// acquireCall takes a server-wide call slot for connection c.
func (s *Server) acquireCall(ctx context.Context, c *conn) error {
	if err := s.calls.Acquire(ctx, 1); err != nil {
		return err
	}
	s.count(func(st *Stats) {
		st.Calls++
		st.MaxCalls = max(st.MaxCalls, st.Calls)
		c.calls++
		st.MaxConnCalls = max(st.MaxConnCalls, c.calls)
	})
	return nil
}

func (s *Server) releaseCall(c *conn) {
	s.count(func(st *Stats) { st.Calls--; c.calls-- })
	s.calls.Release(1)
}

func (s *Server) acquireBytes(ctx context.Context, n int64) error {
	if err := s.bytes.Acquire(ctx, n); err != nil {
		return err
	}
	s.count(func(st *Stats) {
		st.Bytes += n
		st.MaxBytes = max(st.MaxBytes, st.Bytes)
	})
	return nil
}

func (s *Server) releaseBytes(n int64) {
	if n == 0 {
		return
	}
	s.count(func(st *Stats) { st.Bytes -= n })
	s.bytes.Release(n)
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("server: closed")

// Serve accepts connections on l until Shutdown.
func (s *Server) Serve(l net.Listener) error {
	s.init()
	if !s.track(l, true) {
		return ErrServerClosed
	}
	defer s.track(l, false)
	var backoff time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// EMFILE and the like: running out of descriptors must not
			// stop the server for good.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.Log.Warn("accept failed; retrying", "err", err, "in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		cn, err := s.newConn(c)
		if err != nil {
			c.Close()
			if errors.Is(err, ErrServerClosed) {
				return err
			}
			s.count(func(st *Stats) { st.RejectedConns++ })
			s.Log.Warn("refused connection", "remote", c.RemoteAddr(), "err", err)
			continue
		}
		go cn.serve()
	}
}

func (s *Server) track(l io.Closer, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.closing.Load() {
			return false
		}
		s.listeners[l] = struct{}{}
	} else {
		delete(s.listeners, l)
	}
	return true
}

// Shutdown stops accepting, stops reading new calls, waits for calls in
// flight to finish and their replies to be sent, then closes connections.
// If ctx ends first, connections are closed at once and ctx's error is
// returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.mu.Lock()
	s.closing.Store(true)
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.stopReading()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.connWG.Wait(); close(done) }()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.cancel()
		s.mu.Lock()
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

// dispatch decodes rec and runs the call, returning the reply record
// (with its 4-byte record mark reserved) or nil when no reply is due.
func (s *Server) dispatch(ctx context.Context, rec []byte, w *xdr.Writer, remote, local net.Addr, network string) bool {
	start := time.Now()
	r := xdr.NewReader(rec)
	h, err := rpc.ParseCall(r)
	switch {
	case errors.Is(err, rpc.ErrBadRPCVersion):
		rpc.WriteRPCMismatch(w, h.XID)
		return true
	case err != nil:
		// Without a whole header there is no one to answer.
		s.Log.Debug("dropping malformed call", "remote", remote, "err", err)
		s.count(func(st *Stats) { st.DroppedCalls++ })
		return false
	}
	req := &rpc.Request{CallHeader: h, Args: r, Remote: remote, Local: local, Network: network}
	if ap, ok := rpc.AddrPort(remote); ok {
		req.RemoteIP = ap.Addr().Unmap()
	}
	mark := w.Len()
	var callErr error
	switch h.Cred.Flavor {
	case rpc.AuthNone:
	case rpc.AuthSys:
		cred, err := rpc.ParseAuthSys(h.Cred.Body)
		if err != nil {
			callErr = rpc.ErrAuthBadCred
		} else {
			req.Sys = &cred
		}
	default:
		// A flavor we do not know (RPCSEC_GSS, AUTH_DH, ...): the
		// credential cannot be checked at all, as knfsd answers.
		callErr = rpc.ErrAuthBadCred
	}
	if callErr == nil {
		rpc.WriteAccepted(w, h.XID, rpc.Success)
		callErr = s.call(ctx, req, w)
	}
	if callErr != nil {
		w.Truncate(mark)
		var ce *rpc.CallError
		if !errors.As(callErr, &ce) {
			s.Log.Error("call failed", "prog", h.Prog, "vers", h.Vers, "proc", h.Proc, "remote", remote, "err", callErr)
			ce = rpc.ErrSystem
		}
		rpc.WriteCallError(w, h.XID, ce)
	}
	s.observe(h, start, callErr)
	return true
}

// call runs a handler, turning a panic into SYSTEM_ERR: one bad request
// must never take the server down.
func (s *Server) call(ctx context.Context, req *rpc.Request, w *xdr.Writer) (err error) {
	defer func() {
		if v := recover(); v != nil {
			s.Log.Error("handler panic", "prog", req.Prog, "vers", req.Vers, "proc", req.Proc, "remote", req.Remote, "panic", v)
			err = rpc.ErrSystem
		}
	}()
	return s.Handler.ServeRPC(ctx, req, w)
}

func (s *Server) observe(h rpc.CallHeader, start time.Time, err error) {
	if s.Observer != nil {
		s.Observer.CallDone(h.Prog, h.Vers, h.Proc, time.Since(start), err)
	}
}

var writerPool = sync.Pool{New: func() any { return xdr.NewWriter(8 << 10) }}

func getWriter() *xdr.Writer {
	w := writerPool.Get().(*xdr.Writer)
	w.Reset()
	return w
}

func putWriter(w *xdr.Writer) {
	// Keep big READ buffers, but not absurd ones.
	if cap(w.Bytes()) <= 2<<20 {
		writerPool.Put(w)
	}
}

var recPool = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// conn is one client connection.
type conn struct {
	s   *Server
	nc  net.Conn
	wmu sync.Mutex
	wg  sync.WaitGroup // calls in flight

	calls int        // server-wide call slots held; guarded by s.statsMu
	ip    netip.Addr // the client's address, counted in s.perIP
}

var errTooManyConns = errors.New("too many connections from this client address")

func (s *Server) newConn(nc net.Conn) (*conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return nil, ErrServerClosed
	}
	c := &conn{s: s, nc: nc}
	if ap, ok := rpc.AddrPort(nc.RemoteAddr()); ok {
		c.ip = ap.Addr().Unmap()
		if s.perIP[c.ip] >= s.Limits.PerClientConns {
			return nil, fmt.Errorf("%w (%d open, limit %d)", errTooManyConns, s.perIP[c.ip], s.Limits.PerClientConns)
		}
		s.perIP[c.ip]++
	}
	s.conns[c] = struct{}{}
	s.connWG.Add(1)
	s.count(func(st *Stats) { st.Conns++ })
	if s.Observer != nil {
		s.Observer.ConnOpened()
	}
	return c, nil
}

func (c *conn) stopReading() { c.nc.SetReadDeadline(time.Now()) }

// setReadDeadline sets the read deadline unless the server is shutting
// down: Shutdown sets closing before it stops every connection's reads,
// so either its deadline comes after this one or this sees closing.
func (c *conn) setReadDeadline(t time.Time) {
	c.nc.SetReadDeadline(t)
	if c.s.closing.Load() {
		c.stopReading()
	}
}

// writeTimeout bounds how long a client that stops reading can hold a
// connection's write side.
const writeTimeout = 2 * time.Minute

func (c *conn) serve() {
	s := c.s
	defer func() {
		c.wg.Wait()
		c.nc.Close()
		s.mu.Lock()
		delete(s.conns, c)
		if c.ip.IsValid() {
			if s.perIP[c.ip]--; s.perIP[c.ip] <= 0 {
				delete(s.perIP, c.ip)
			}
		}
		s.mu.Unlock()
		s.count(func(st *Stats) { st.Conns-- })
		if s.Observer != nil {
			s.Observer.ConnClosed()
		}
		s.connWG.Done()
	}()
	if s.closing.Load() {
		return
	}
	slots := make(chan struct{}, s.Limits.PerConnInflight)
	rr := rpc.RecordReader{R: bufio.NewReaderSize(c.nc, 64<<10), Max: s.Limits.MaxRecord}
	remote, local := c.nc.RemoteAddr(), c.nc.LocalAddr()
	ctx := s.baseCtx
	for {
		slots <- struct{}{}
		// The bytes of a call are reserved from the server-wide budget
		// in one go when its first fragment header arrives: the whole
		// record if that fragment is the last, else MaxRecord, its
		// bound. A reader never waits for budget while holding some, so
		// readers with calls half in cannot deadlock on the budget. The
		// server-wide call slot is taken once the whole call is in, so an
		// idle or stalled connection holds no call slot.
		var reserved int64
		started := false
		bp := recPool.Get().(*[]byte)
		rec, err := rr.Read(*bp, func(n int, last bool) error {
			if !started {
				// From here the whole call must arrive in time.
				started = true
				c.setReadDeadline(time.Now().Add(s.Limits.RecordTimeout))
			}
			if reserved > 0 {
				return nil // the first fragment reserved for the record
			}
			want := int64(s.Limits.MaxRecord)
			if last {
				want = int64(n)
			}
			if want == 0 {
				return nil
			}
			if err := s.acquireBytes(ctx, want); err != nil {
				return err
			}
			reserved = want
			return nil
		})
		if started {
			c.setReadDeadline(time.Time{}) // waiting for the next call has no limit
		}
		if err == nil && reserved > int64(len(rec)) {
			s.releaseBytes(reserved - int64(len(rec))) // a multi-fragment record's excess
			reserved = int64(len(rec))
		}
		if err == nil {
			err = s.acquireCall(ctx, c)
		}
		if err != nil {
			s.releaseBytes(reserved)
			recPool.Put(bp)
			var tl rpc.ErrRecordTooLarge
			switch {
			case errors.As(err, &tl):
				s.count(func(st *Stats) { st.RejectedConns++ })
				s.Log.Warn("closing connection: oversized record", "remote", remote, "err", err)
			case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), s.closing.Load():
			case started && isTimeout(err):
				s.count(func(st *Stats) { st.RejectedConns++ })
				s.Log.Warn("closing connection: a call did not arrive in time", "remote", remote, "timeout", s.Limits.RecordTimeout)
			default:
				var ne net.Error
				if !errors.As(err, &ne) || !ne.Timeout() {
					s.Log.Debug("connection read ended", "remote", remote, "err", err)
				}
			}
			return
		}
		c.wg.Add(1)
		go func() {
			defer func() {
				*bp = rec[:0]
				recPool.Put(bp)
				s.releaseBytes(reserved)
				s.releaseCall(c)
				<-slots
				c.wg.Done()
			}()
			w := getWriter()
			defer putWriter(w)
			w.Uint32(0) // record mark
			if !s.dispatch(ctx, rec, w, remote, local, "tcp") {
				return
			}
			out := w.Bytes()
			rpc.MarkRecord(out)
			c.wmu.Lock()
			c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
			_, err := c.nc.Write(out)
			c.wmu.Unlock()
			if err != nil {
				s.Log.Debug("reply write failed; closing", "remote", remote, "err", err)
				c.nc.Close()
			}
		}()
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// ServeUDP answers calls arriving as datagrams on pc until Shutdown. Calls
// are handled one at a time: UDP is served for the portmapper, whose calls
// are tiny.
func (s *Server) ServeUDP(pc net.PacketConn) error {
	s.init()
	if !s.track(pc, true) {
		return ErrServerClosed
	}
	defer s.track(pc, false)
	buf := make([]byte, 64<<10)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			continue
		}
		w := getWriter()
		local := udpLocalAddr(pc, from)
		if s.dispatch(s.baseCtx, buf[:n], w, from, local, "udp") {
			pc.WriteTo(w.Bytes(), from)
		}
		putWriter(w)
	}
}

// udpLocalAddr finds the address a reply to from leaves by. For a socket
// bound to a wildcard address it asks the routing table by connecting an
// unsent UDP socket, which sends nothing.
func udpLocalAddr(pc net.PacketConn, from net.Addr) net.Addr {
	la, ok := pc.LocalAddr().(*net.UDPAddr)
	if !ok || !la.IP.IsUnspecified() {
		return pc.LocalAddr()
	}
	c, err := net.DialUDP("udp", nil, from.(*net.UDPAddr))
	if err != nil {
		return la
	}
	defer c.Close()
	out := *c.LocalAddr().(*net.UDPAddr)
	out.Port = la.Port
	return &out
}
