package rpcserver

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rwxnfs/rwxnfs/pkg/rpc"
)

// A connection's life: serve reads one call after another (readCall,
// which holds the call's budget), starts each on a worker goroutine (run),
// which dispatches it and writes its reply (reply); when reading ends,
// close waits for the calls in flight and gives back what the
// connection held.

// conn is one client connection.
type conn struct {
	s   *Server
	nc  net.Conn
	wmu sync.Mutex // one reply record at a time on the wire
	// wdeadline is the write deadline, moved on only once half of
	// writeTimeout has passed: a reply may wait writeTimeout/2 to
	// writeTimeout for a client that does not read. Guarded by wmu.
	wdeadline time.Time
	wg        sync.WaitGroup // calls in flight

	calls int        // calls read and not yet answered; guarded by s.statsMu
	ip    netip.Addr // the client's address, counted in s.clients
	cl    *client    // the client's budgets; nil if the address is unknown

	// For idle reclaim (client.go): calls from first byte to reply, and
	// when the last one ended. reclaimed is guarded by s.mu.
	busy      atomic.Int32
	lastUsed  atomic.Int64
	reclaimed bool

	// For stalled-claim reclaim (client.go): the server-wide bytes held
	// for the record being read, when its last byte arrived (or its
	// claim was granted), and whether its reading was stopped for it.
	claim    atomic.Int64
	lastRead atomic.Int64
	stalled  atomic.Bool

	remote, local net.Addr
	since         time.Time     // accepted
	served        atomic.Uint64 // calls answered or dropped
}

var (
	errTooManyConns      = errors.New("too many connections from this client address")
	errTooManyConnsTotal = errors.New("too many connections")
)

func (s *Server) newConn(nc net.Conn) (*conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return nil, ErrServerClosed
	}
	c := &conn{s: s, nc: nc, remote: nc.RemoteAddr(), local: nc.LocalAddr(), since: time.Now()}
	c.lastUsed.Store(c.since.UnixNano())
	if ap, ok := rpc.AddrPort(c.remote); ok {
		c.ip = ap.Addr().Unmap()
		if cl := s.clients[c.ip]; cl != nil && cl.conns >= s.Limits.PerClientConns {
			return nil, fmt.Errorf("%w (%d open, limit %d)", errTooManyConns, cl.conns, s.Limits.PerClientConns)
		}
	}
	if err := s.makeRoom(); err != nil {
		return nil, err
	}
	if c.ip.IsValid() {
		cl, err := s.addClientConn(c.ip)
		if err != nil {
			return nil, err
		}
		c.cl = cl
	}
	s.live++
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
// down or the connection's claim was reclaimed: Shutdown and
// reclaimStalled set their flag before they stop the connection's reads,
// so either their deadline comes after this one or this sees the flag.
func (c *conn) setReadDeadline(t time.Time) {
	c.nc.SetReadDeadline(t)
	if c.s.closing.Load() || c.stalled.Load() {
		c.stopReading()
	}
}

// writeTimeout bounds how long a client that stops reading can hold a
// connection's write side: a reply waits at most writeTimeout, and at
// least half of it (reply moves the deadline on only every half, as a
// deadline change per reply costs a timer change).
const writeTimeout = 2 * time.Minute

var recPool = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// call is one call read off the connection, with what it holds: its
// buffer (from recPool), its bytes of the server-wide budget and a
// server-wide call slot.
type call struct {
	buf      *[]byte
	rec      []byte
	reserved int64
}

// serve reads calls until the connection ends, at most
// Limits.PerConnInflight of them in flight.
func (c *conn) serve() {
	defer c.close()
	if c.s.closing.Load() {
		return
	}
	slots := make(chan struct{}, c.s.Limits.PerConnInflight)
	br := bufio.NewReaderSize(progressReader{c}, 64<<10)
	rr := rpc.RecordReader{R: br, Max: c.s.Limits.MaxRecord}
	for {
		slots <- struct{}{}
		cl, err := c.readCall(&rr, br)
		if err != nil {
			return
		}
		c.wg.Add(1)
		if c.lone(br, slots, cl.rec) {
			c.run(cl, slots)
			continue
		}
		c.s.spawn(func() { c.run(cl, slots) })
	}
}

// lone reports whether the call in rec may run on the reading goroutine:
// it is brief (rpc.Brief), nothing else of this connection is in flight
// (slots holds only its own token) and no further call is waiting in the
// buffer. That is one program doing one thing at a time, whose every call
// otherwise crosses to another thread and back (some 20-40 µs of a
// 100 µs GETATTR here); calls that pipeline, and calls that may wait for
// a flush, still run on workers, so a slow call never holds up reading
// the next.
func (c *conn) lone(br *bufio.Reader, slots chan struct{}, rec []byte) bool {
	if br.Buffered() > 0 || len(slots) > 1 || c.s.brief == nil {
		return false
	}
	prog, vers, proc, ok := rpc.PeekProc(rec)
	return ok && c.s.brief.Brief(prog, vers, proc)
}

// readCall reads the next call. Its bytes are reserved from the
// server-wide budget in one go when its first fragment header arrives:
// the whole record if that fragment is the last, else MaxRecord, its
// bound. A reader never waits for budget while holding some, so readers
// with calls half in cannot deadlock on the budget; a claim whose bytes do
// not come is taken back when others need it (client.go, StallReclaim). The server-wide call
// slot is taken once the whole call is in, so an idle or stalled
// connection holds no call slot. On error nothing is held and the
// connection must close.
func (c *conn) readCall(rr *rpc.RecordReader, br *bufio.Reader) (call, error) {
	s := c.s
	cl := call{buf: recPool.Get().(*[]byte)}
	started, deadline := false, false
	rec, err := rr.Read(*cl.buf, func(n int, last bool) error {
		if !started {
			started = true
			c.markBusy()
			// From here the whole call must arrive in time, unless it is
			// in already: most calls are, and arming and clearing a
			// deadline per call costs two timer changes.
			if !last || br.Buffered() < n {
				deadline = true
				c.setReadDeadline(time.Now().Add(s.Limits.RecordTimeout))
			}
		}
		if cl.reserved > 0 {
			return nil // the first fragment reserved for the record
		}
		want := int64(s.Limits.MaxRecord)
		if last {
			want = int64(n)
		}
		if want == 0 {
			return nil
		}
		if err := s.acquireClientBytes(s.baseCtx, c, want); err != nil {
			return err
		}
		cl.reserved = want
		// A fresh claim gets an eighth of StallReclaim for a byte to
		// arrive: a client whose call is in the socket's buffer (it
		// waited for budget) is read at once, while a stalled one is
		// taken back quickly, so a queue of stalled claims ahead of a
		// well-behaved call drains fast.
		c.lastRead.Store(time.Now().Add(-s.Limits.StallReclaim + s.Limits.StallReclaim/8).UnixNano())
		c.claim.Store(want)
		return nil
	})
	c.claim.Store(0)
	if deadline {
		c.setReadDeadline(time.Time{}) // waiting for the next call has no limit
	}
	if err == nil && cl.reserved > int64(len(rec)) {
		s.releaseClientBytes(c, cl.reserved-int64(len(rec))) // a multi-fragment record's excess
		cl.reserved = int64(len(rec))
	}
	if err == nil {
		err = s.acquireClientCall(s.baseCtx, c)
		if err == nil {
			if err = s.acquireCall(s.baseCtx, c); err != nil {
				s.releaseClientCall(c)
			}
		}
	}
	if err != nil {
		s.releaseClientBytes(c, cl.reserved)
		recPool.Put(cl.buf)
		if started {
			c.markIdle()
		}
		c.readEnded(err, started)
		return call{}, err
	}
	cl.rec = rec
	return cl, nil
}

// readEnded logs why reading stopped, as a warning when the client broke
// a limit.
func (c *conn) readEnded(err error, started bool) {
	s := c.s
	var tl rpc.ErrRecordTooLarge
	switch {
	case errors.As(err, &tl):
		s.count(func(st *Stats) { st.RejectedConns++ })
		s.Log.Warn("closing connection: oversized record", "remote", c.remote, "err", err)
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), s.closing.Load():
	case c.stalled.Load():
		s.count(func(st *Stats) { st.RejectedConns++ })
	case started && isTimeout(err):
		s.count(func(st *Stats) { st.RejectedConns++ })
		s.Log.Warn("closing connection: a call did not arrive in time", "remote", c.remote, "timeout", s.Limits.RecordTimeout)
	case !isTimeout(err):
		s.Log.Debug("connection read ended", "remote", c.remote, "err", err)
	}
}

// run serves one call. Once served, the call gives back its record and
// its server-wide slot; its client's and connection's slots are held until
// the reply is written, so unsent replies count against their owner only.
func (c *conn) run(cl call, slots <-chan struct{}) {
	s := c.s
	c.served.Add(1)
	w := getWriter()
	w.Uint32(0) // record mark
	ok := s.dispatch(s.baseCtx, cl.rec, w, c.remote, c.local, "tcp")
	*cl.buf = cl.rec[:0]
	recPool.Put(cl.buf)
	s.releaseClientBytes(c, cl.reserved)
	s.servedCall(c)
	if ok {
		c.reply(w.Bytes())
	}
	putWriter(w)
	s.repliedCall(c)
	s.releaseClientCall(c)
	c.markIdle()
	<-slots
	c.wg.Done()
}

// reply writes one reply record. Replies go out in the order calls
// finish; a client that does not read them gets writeTimeout before the
// connection is closed.
func (c *conn) reply(rec []byte) {
	rpc.MarkRecord(rec)
	c.wmu.Lock()
	if now := time.Now(); now.After(c.wdeadline.Add(-writeTimeout / 2)) {
		c.wdeadline = now.Add(writeTimeout)
		c.nc.SetWriteDeadline(c.wdeadline)
	}
	_, err := c.nc.Write(rec)
	c.wmu.Unlock()
	if err != nil {
		c.s.Log.Debug("reply write failed; closing", "remote", c.remote, "err", err)
		c.nc.Close()
	}
}

// close waits for the calls in flight, closes the connection and gives
// back its place in the server's accounting.
func (c *conn) close() {
	s := c.s
	c.wg.Wait()
	c.nc.Close()
	s.mu.Lock()
	delete(s.conns, c)
	if !c.reclaimed {
		s.live--
	}
	if c.cl != nil {
		s.dropClientConn(c.ip)
	}
	s.mu.Unlock()
	s.count(func(st *Stats) { st.Conns-- })
	if s.Observer != nil {
		s.Observer.ConnClosed()
	}
	s.connWG.Done()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
