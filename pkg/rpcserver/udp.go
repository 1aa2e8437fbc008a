package rpcserver

import (
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/rwxnfs/rwxnfs/pkg/rpc"
)

// ServeUDP answers calls arriving as datagrams on pc until Shutdown. Calls
// are handled one at a time: UDP is served for the portmapper, whose calls
// are tiny. Replies are rate-limited per source (udplimit.go).
func (s *Server) ServeUDP(pc net.PacketConn) error {
	s.init()
	if !s.track(pc, true) {
		return ErrServerClosed
	}
	defer s.track(pc, false)
	buf := make([]byte, 64<<10)
	lim := newUDPLimiter(s.Limits.UDPBytesPerSource)
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
		var src netip.Addr
		if ap, ok := rpc.AddrPort(from); ok {
			src = ap.Addr().Unmap()
		}
		if !lim.allow(src, time.Now()) {
			s.count(func(st *Stats) { st.UDPDropped++ })
			continue
		}
		w := getWriter()
		local := udpLocalAddr(pc, from)
		if s.dispatch(s.baseCtx, buf[:n], w, from, local, "udp") {
			lim.charge(src, w.Len())
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
