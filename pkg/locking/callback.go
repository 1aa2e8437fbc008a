package locking

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/rwxnfs/rwxnfs/pkg/portmap"
	"github.com/rwxnfs/rwxnfs/pkg/rpc"
	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// Dialer connects the server to an RPC program on a client host: the
// client's lock manager, for GRANTED callbacks and the results of *_MSG
// calls, and the client's status monitor, for SM_NOTIFY. local, when
// valid, is the server address the client used to reach us; a callback
// should come from it, because clients (Linux lockd among them) accept a
// GRANTED callback only from the address they sent the LOCK to.
type Dialer interface {
	Dial(ctx context.Context, local, host netip.Addr, prog, vers uint32) (*rpc.Client, error)
}

// PortmapDialer finds a program through the host's portmapper (PMAP v2
// GETPORT for TCP) and connects to it over TCP.
type PortmapDialer struct {
	// Port is the portmapper's port; 0 means 111. Tests point it at a
	// portmapper on a loopback port.
	Port int
}

// ErrNotRegistered means the host's portmapper does not know the program.
var ErrNotRegistered = portmap.ErrNotRegistered

// Dial implements Dialer.
func (d PortmapDialer) Dial(ctx context.Context, local, host netip.Addr, prog, vers uint32) (*rpc.Client, error) {
	pport := d.Port
	if pport == 0 {
		pport = portmap.Port
	}
	pm, err := dialFrom(ctx, local, netip.AddrPortFrom(host, uint16(pport)))
	if err != nil {
		return nil, err
	}
	port, err := portmap.Getport(ctx, pm, prog, vers)
	pm.Close()
	if err != nil {
		return nil, fmt.Errorf("portmapper on %v: %w", host, err)
	}
	return dialFrom(ctx, local, netip.AddrPortFrom(host, uint16(port)))
}

// dialFrom connects to to, from local if that address can be bound.
func dialFrom(ctx context.Context, local netip.Addr, to netip.AddrPort) (*rpc.Client, error) {
	addr := to.String()
	if local.IsValid() && local.Is4() == to.Addr().Is4() {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: local.AsSlice()}}
		if c, err := d.DialContext(ctx, "tcp", addr); err == nil {
			return rpc.NewClient(c), nil
		}
	}
	return rpc.Dial(ctx, addr)
}

// addrIP returns the IP of a TCP or UDP address.
func addrIP(a net.Addr) netip.Addr {
	ap, _ := rpc.AddrPort(a)
	return ap.Addr().Unmap()
}

// grantInfo is what a queued LOCK keeps for its GRANTED callback: the
// arguments echo the client's request, which the client matches against
// its blocked request.
type grantInfo struct {
	cookie []byte
	lock   Lock4
	excl   bool
	host   netip.Addr
	local  netip.Addr
}

// deliverGrant tells a client that its queued lock was granted, by an
// NLM4_GRANTED call to its lock manager. The grant stays provisional
// until the client accepts it; it is revoked (the lock released) when the
// client refuses it or cannot be reached after the configured retries.
// A repeat of the LOCK, an UNLOCK or a CANCEL from the client settles the
// grant too, which stops the retries.
func (s *Service) deliverGrant(w *Waiter) {
	gi, ok := w.Data.(*grantInfo)
	if !ok {
		s.table.Revoke(w)
		return
	}
	delay := s.cfg.CallbackBackoff
	for attempt := 0; ; attempt++ {
		if !s.table.IsProvisional(w) {
			return
		}
		st, err := s.callGranted(gi)
		switch {
		case err == nil && st == StatGranted:
			s.table.Confirm(w)
			return
		case err == nil && st != StatDeniedGracePeriod:
			s.log.Info("client refused granted lock; releasing", "client", gi.lock.CallerName, "host", gi.host, "stat", st)
			s.table.Revoke(w)
			return
		}
		if attempt >= s.cfg.CallbackRetries {
			s.log.Warn("GRANTED callback failed; releasing lock", "client", gi.lock.CallerName, "host", gi.host, "err", err, "stat", st)
			s.table.Revoke(w)
			return
		}
		select {
		case <-time.After(delay):
		case <-s.ctx.Done():
			return
		}
		delay *= 2
	}
}

func (s *Service) callGranted(gi *grantInfo) (Stat, error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.CallbackTimeout)
	defer cancel()
	c, err := s.cfg.Dialer.Dial(ctx, gi.local, gi.host, NLMProg, NLMVers)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	args := TestArgs{Cookie: gi.cookie, Exclusive: gi.excl, Lock: gi.lock}
	b, err := c.Call(ctx, NLMProg, NLMVers, ProcGranted, args.Encode)
	if err != nil {
		return 0, err
	}
	var res Res
	if err := res.Decode(xdr.NewReader(b)); err != nil {
		return 0, err
	}
	return res.Stat, nil
}

// replyAsync sends the result of an *_MSG call back to the client as the
// matching *_RES call. The result is encoded at once (it may alias the
// request buffer); the call goes out in the background, at most
// Config.MaxAsync at a time: past that the result is dropped and the
// client, which retransmits, asks again.
func (s *Service) replyAsync(host, local netip.Addr, proc uint32, enc func(*xdr.Writer)) {
	w := xdr.NewWriter(64)
	enc(w)
	body := w.Bytes()
	select {
	case s.async <- struct{}{}:
	default:
		s.log.Warn("too many asynchronous NLM replies in flight; dropping one", "host", host, "proc", proc)
		return
	}
	if !s.background(func() {
		defer func() { <-s.async }()
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.CallbackTimeout)
		defer cancel()
		c, err := s.cfg.Dialer.Dial(ctx, local, host, NLMProg, NLMVers)
		if err != nil {
			s.log.Debug("NLM reply: cannot reach client", "host", host, "proc", proc, "err", err)
			return
		}
		defer c.Close()
		if _, err := c.Call(ctx, NLMProg, NLMVers, proc, func(w *xdr.Writer) { w.FixedOpaque(body) }); err != nil {
			s.log.Debug("NLM reply failed", "host", host, "proc", proc, "err", err)
		}
	}) {
		<-s.async
	}
}

// hostAddr parses a recorded address.
func hostAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("bad address %s", strconv.Quote(s))
	}
	return a, nil
}
