package rpcserver

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/sync/semaphore"
)

// Client isolation. The server-wide budgets (call slots, bytes of calls,
// connections) are shared by every client, so each is also bounded per
// client address: one host cannot take all of any of them. And what a
// client does not read is held against that client only: a call's
// server-wide slot is given back as soon as its handler returns, while
// its client's slot (and its connection's) is held until the reply has
// been written. A client that stops reading replies thus stops getting
// new calls read, holds at most PerClientInflight unsent replies, and
// holds no server-wide slot at all.

// client is what one client address holds; it lives while the address
// has a connection open. Guarded by Server.mu, its semaphores aside.
type client struct {
	conns int
	calls *semaphore.Weighted // PerClientInflight: calls read and not yet answered
	bytes *semaphore.Weighted // PerClientBytes: bytes of calls reserved
}

// addClientConn finds or makes ip's client and counts a connection to it.
// Called with s.mu held.
func (s *Server) addClientConn(ip netip.Addr) (*client, error) {
	cl := s.clients[ip]
	if cl == nil {
		cl = &client{
			calls: semaphore.NewWeighted(int64(s.Limits.PerClientInflight)),
			bytes: semaphore.NewWeighted(s.Limits.PerClientBytes),
		}
		s.clients[ip] = cl
	}
	if cl.conns >= s.Limits.PerClientConns {
		return nil, fmt.Errorf("%w (%d open, limit %d)", errTooManyConns, cl.conns, s.Limits.PerClientConns)
	}
	cl.conns++
	return cl, nil
}

// dropClientConn forgets a connection of ip. Called with s.mu held.
func (s *Server) dropClientConn(ip netip.Addr) {
	if cl := s.clients[ip]; cl != nil {
		if cl.conns--; cl.conns <= 0 {
			delete(s.clients, ip)
		}
	}
}

// acquireClientBytes reserves n bytes for a call of c, from its client's
// budget and then the server's. The caller holds no budget while it
// waits: the client's bytes are held only by calls of that client whose
// server-wide bytes are held or about to be, and those finish, time out
// (RecordTimeout) or are reclaimed (StallReclaim), so waiting cannot
// deadlock.
func (s *Server) acquireClientBytes(ctx context.Context, c *conn, n int64) error {
	if c.cl != nil {
		if err := c.cl.bytes.Acquire(ctx, n); err != nil {
			return err
		}
	}
	if err := s.acquireBytesReclaiming(ctx, n); err != nil {
		if c.cl != nil {
			c.cl.bytes.Release(n)
		}
		return err
	}
	return nil
}

func (s *Server) releaseClientBytes(c *conn, n int64) {
	if n == 0 {
		return
	}
	s.releaseBytes(n)
	if c.cl != nil {
		c.cl.bytes.Release(n)
	}
}

// acquireClientCall takes c's client's call slot; it is held until the
// call's reply is written.
func (s *Server) acquireClientCall(ctx context.Context, c *conn) error {
	if c.cl == nil {
		return nil
	}
	if err := c.cl.calls.Acquire(ctx, 1); err != nil {
		return err
	}
	return nil
}

func (s *Server) releaseClientCall(c *conn) {
	if c.cl != nil {
		c.cl.calls.Release(1)
	}
}

// Connection cap and idle reclaim. A socket is a file descriptor, and the
// descriptors the server needs for its work (open files and directories)
// come from the same RLIMIT_NOFILE: MaxConns keeps connections from
// taking them. When a new connection would pass the cap, the connection
// idle longest (no call being read, served or answered) is closed to make
// room, as knfsd does; its client reconnects when it next needs to, and
// retransmits any call it had sent that was not read. If no connection
// is idle the new one is refused.

// markBusy and markIdle count a connection's calls from their first byte
// to their reply; a connection with none is idle.
func (c *conn) markBusy() { c.busy.Add(1) }

func (c *conn) markIdle() {
	c.lastUsed.Store(time.Now().UnixNano())
	c.busy.Add(-1)
}

// reclaimIdle closes every connection idle longer than IdleTimeout; it
// runs every IdleTimeout/4 until Shutdown, so an idle connection lives
// at most 1.25 IdleTimeout. A socket costs a descriptor and kernel
// buffers: clients that mount and go quiet should not keep them for
// good, and a Linux client reconnects transparently when next needed.
func (s *Server) reclaimIdle() {
	t := time.NewTicker(s.Limits.IdleTimeout / 4)
	defer t.Stop()
	for {
		select {
		case <-s.baseCtx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		n := 0
		s.mu.Lock()
		for c := range s.conns {
			if !c.reclaimed && c.busy.Load() == 0 && now.Sub(time.Unix(0, c.lastUsed.Load())) >= s.Limits.IdleTimeout {
				s.reclaim(c)
				n++
			}
		}
		s.mu.Unlock()
		if n > 0 { // one line per sweep: there may be thousands
			s.Log.Info("closed connections idle too long", "connections", n, "idle_timeout", s.Limits.IdleTimeout)
		}
	}
}

// reclaim closes the idle connection c; called with s.mu held.
func (s *Server) reclaim(c *conn) {
	c.reclaimed = true
	s.live--
	s.count(func(st *Stats) { st.ReclaimedConns++ })
	c.nc.Close()
}

// makeRoom is called with s.mu held before a new connection is added: at
// the cap it closes the connection idle longest, or reports that none is.
func (s *Server) makeRoom() error {
	if s.live < s.Limits.MaxConns {
		return nil
	}
	var victim *conn
	for c := range s.conns {
		if c.reclaimed || c.busy.Load() != 0 {
			continue
		}
		if victim == nil || c.lastUsed.Load() < victim.lastUsed.Load() {
			victim = c
		}
	}
	if victim == nil {
		return fmt.Errorf("%w (%d open, none idle)", errTooManyConnsTotal, s.live)
	}
	s.reclaim(victim)
	s.Log.Info("closed the connection idle longest to make room", "remote", victim.remote, "idle", time.Since(time.Unix(0, victim.lastUsed.Load())).Round(time.Millisecond), "max_conns", s.Limits.MaxConns)
	return nil
}

// Stalled claims. A record's bytes are reserved whole when its header
// arrives (one reservation per call: the hot path stays cheap), so a
// header followed by nothing holds budget it never uses. Per-client
// budgets bound what one address claims, but addresses are cheap (IPv6),
// so the server-wide budget needs more: while a reader waits for it,
// every connection whose claim has seen no byte arrive for StallReclaim
// (StallReclaim/8 for a claim with no byte since it was granted) loses
// it. Its reading stops (stopReading, so the calls it has in
// flight are still answered), readCall gives the claim back and the
// connection closes; a real client reconnects and sends the call again.
// A reader waiting for budget holds none, and a claim is reclaimed only
// from a reader blocked on its own client's bytes, never from one the
// waiting readers depend on.

// acquireBytesReclaiming takes n bytes of the server-wide budget,
// looking for stalled claims to reclaim while it waits.
func (s *Server) acquireBytesReclaiming(ctx context.Context, n int64) error {
	if s.tryAcquireBytes(n) {
		return nil
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(s.Limits.StallReclaim / 8)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				s.reclaimStalled()
			case <-done:
				return
			}
		}
	}()
	err := s.acquireBytes(ctx, n)
	close(done)
	return err
}

// reclaimStalled stops reading on every connection whose claim has seen
// no byte for StallReclaim. Many waiters call it; it looks at most once
// per StallReclaim/16.
func (s *Server) reclaimStalled() {
	now := time.Now()
	last := s.lastScan.Load()
	if now.UnixNano()-last < int64(s.Limits.StallReclaim/16) || !s.lastScan.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	s.mu.Lock()
	n, bytes, some := 0, int64(0), net.Addr(nil)
	for c := range s.conns {
		claim := c.claim.Load()
		if claim == 0 || now.Sub(time.Unix(0, c.lastRead.Load())) < s.Limits.StallReclaim {
			continue
		}
		if c.stalled.Swap(true) {
			continue // already stopped
		}
		s.count(func(st *Stats) { st.StalledClaims++ })
		c.stopReading()
		n, bytes, some = n+1, bytes+claim, c.remote
	}
	s.mu.Unlock()
	if n > 0 {
		// One line per scan: stalled claims come in floods.
		s.Log.Warn("closing connections that hold claims on the byte budget others wait for, and send nothing", "connections", n, "bytes", bytes, "one", some, "stall_reclaim", s.Limits.StallReclaim)
	}
}

// progressReader reads from c's socket, noting when bytes arrive.
type progressReader struct{ c *conn }

func (r progressReader) Read(p []byte) (int, error) {
	n, err := r.c.nc.Read(p)
	if n > 0 {
		r.c.lastRead.Store(time.Now().UnixNano())
	}
	return n, err
}
