// Package rpcserver is the ONC RPC transport of nfsd: it accepts TCP (and UDP)
// connections, reads record-marked calls, checks RPC version, program,
// version and credential, and runs each call on its own goroutine so that
// many calls on one connection are served at once, replies going back in
// whatever order they finish, matched by XID. How much a client may pipeline
// is bounded per connection and for the whole server.
package rpcserver

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/rwxnfs/rwxnfs/pkg/rpc"
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
	// StallReclaim is how long a connection may hold a claim on the
	// server-wide byte budget for a record with no byte of it arriving,
	// while another reader waits for that budget: such a connection is
	// closed (after the calls it has in flight are answered) and its
	// claim given back. A record's bytes are reserved whole when its
	// header arrives, so without this, stalled headers from enough
	// addresses would hold the whole budget for RecordTimeout
	// (default 5s).
	StallReclaim time.Duration
	// IdleTimeout closes a connection that has had no call in flight,
	// read or unsent, for this long (default 15 minutes, knfsd's order of
	// magnitude); clients reconnect when they next need to.
	IdleTimeout time.Duration
	// PerClientConns caps the open connections from one IP address, so
	// one host cannot tie up the byte budget with stalled records on
	// many connections. A Linux client uses one per server and mount
	// options (nconnect: at most 16).
	PerClientConns int
	// PerClientInflight caps the calls of one client address, on all
	// its connections, that are read and not yet answered: being served,
	// or served with the reply not yet taken by the client. A client that
	// stops reading replies holds at most this many (default the larger
	// of PerConnInflight and Inflight/2: 128, what nfsbench's 8
	// connections × 16 calls keep in flight; at most half the server's
	// call slots can then be in one client's handlers at once).
	PerClientInflight int
	// PerClientBytes caps the bytes of calls one client address holds
	// reserved from InflightBytes (default InflightBytes/16, at least
	// MaxRecord), so stalled records from fewer than 16 hosts cannot
	// take the whole budget; a record's bytes are reserved when its
	// header arrives, and RecordTimeout bounds how long they are held
	// (StallReclaim, when others wait for them).
	PerClientBytes int64
	// MaxConns caps the open connections in all (default 4096; nfsd
	// derives it from RLIMIT_NOFILE, see pkg/nfsd). At the cap the
	// connection idle longest is closed to admit a new one.
	MaxConns int
	// UDPBytesPerSource is the reply bytes a second (with four seconds'
	// burst) sent to one source address over UDP (default 16 KiB), so the
	// server cannot be used to reflect traffic at a forged address.
	UDPBytesPerSource int
}

// DefaultLimits fit a 1 MiB wsize with headroom.
var DefaultLimits = Limits{
	MaxRecord:         1<<20 + 64<<10,
	PerConnInflight:   64,
	Inflight:          256,
	InflightBytes:     256 << 20,
	RecordTimeout:     2 * time.Minute,
	StallReclaim:      5 * time.Second,
	IdleTimeout:       15 * time.Minute,
	PerClientConns:    64,
	MaxConns:          4096,
	UDPBytesPerSource: 16 << 10,
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
	if l.StallReclaim <= 0 {
		l.StallReclaim = DefaultLimits.StallReclaim
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = DefaultLimits.IdleTimeout
	}
	if l.PerClientConns <= 0 {
		l.PerClientConns = DefaultLimits.PerClientConns
	}
	if l.MaxConns <= 0 {
		l.MaxConns = DefaultLimits.MaxConns
	}
	if l.UDPBytesPerSource <= 0 {
		l.UDPBytesPerSource = DefaultLimits.UDPBytesPerSource
	}
	l.InflightBytes = max(l.InflightBytes, int64(l.MaxRecord))
	if l.PerClientInflight <= 0 {
		l.PerClientInflight = max(l.PerConnInflight, l.Inflight/2)
	}
	if l.PerClientBytes <= 0 {
		l.PerClientBytes = l.InflightBytes / 16
	}
	// A client must be able to send one largest record, and cannot hold
	// more than the whole budget.
	l.PerClientBytes = min(max(l.PerClientBytes, int64(l.MaxRecord)), l.InflightBytes)
	return l
}

// Stats is what the server holds for its clients at one moment, and the
// most it has held at once: the limits are the bounds on both.
type Stats struct {
	Conns         int   // open connections
	Calls         int   // calls being served (holding a server-wide call slot)
	Replying      int   // calls served whose replies are not yet written
	Bytes         int64 // bytes of call records reserved
	MaxCalls      int   // high-water mark of Calls
	MaxBytes      int64 // high-water mark of Bytes
	MaxConnCalls  int   // high-water mark of calls on any one connection
	DroppedCalls  int64 // malformed messages dropped without a reply
	RejectedConns int64 // connections closed for an oversized record, a stalled record or too many from one client
	// ReclaimedConns counts idle connections closed to make room under
	// MaxConns, or for being idle longer than IdleTimeout.
	ReclaimedConns int64
	// StalledClaims counts connections closed for holding a claim on
	// the byte budget with no bytes arriving while others waited.
	StalledClaims int64
	UDPDropped    int64 // UDP calls dropped for their source's reply rate
}

// Server serves RPC calls to one Handler (usually an rpc.Mux).
type Server struct {
	Handler  rpc.Handler
	Log      *slog.Logger
	Observer Observer
	Limits   Limits

	initOnce sync.Once
	idleOnce sync.Once // starts reclaimIdle with the first Serve
	calls    *semaphore.Weighted
	bytes    *semaphore.Weighted

	statsMu sync.Mutex
	stats   Stats

	mu        sync.Mutex
	listeners map[io.Closer]struct{}
	conns     map[*conn]struct{}
	clients   map[netip.Addr]*client // by address, while it has connections (client.go)
	live      int                    // open connections not being reclaimed
	closing   atomic.Bool
	connWG    sync.WaitGroup
	work      chan func()  // to idle workers (workers.go)
	brief     rpc.Brief    // Handler's, if it has one: which calls may run inline (conn.lone)
	lastScan  atomic.Int64 // when reclaimStalled last looked (client.go)
	stopWork  sync.Once
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
		s.clients = make(map[netip.Addr]*client)
		s.baseCtx, s.cancel = context.WithCancel(context.Background())
		s.work = make(chan func())
		s.brief, _ = s.Handler.(rpc.Brief)
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

// servedCall gives back c's call's server-wide slot once its handler has
// returned; the call is counted as replying until repliedCall.
func (s *Server) servedCall(c *conn) {
	s.count(func(st *Stats) { st.Calls--; st.Replying++ })
	s.calls.Release(1)
}

func (s *Server) repliedCall(c *conn) {
	s.count(func(st *Stats) { st.Replying--; c.calls-- })
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

// tryAcquireBytes is acquireBytes without waiting.
func (s *Server) tryAcquireBytes(n int64) bool {
	if !s.bytes.TryAcquire(n) {
		return false
	}
	s.count(func(st *Stats) {
		st.Bytes += n
		st.MaxBytes = max(st.MaxBytes, st.Bytes)
	})
	return true
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
	s.idleOnce.Do(func() { go s.reclaimIdle() })
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
	go func() {
		s.connWG.Wait() // every connection's calls have ended
		s.stopWorkers()
		close(done)
	}()
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

// ConnInfo describes one open client connection.
type ConnInfo struct {
	Remote net.Addr
	Since  time.Time // when it was accepted
	Calls  uint64    // calls received on it so far
}

// Conns lists the open connections, for operators.
func (s *Server) Conns() []ConnInfo {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ConnInfo, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, ConnInfo{Remote: c.remote, Since: c.since, Calls: c.served.Load()})
	}
	return out
}
