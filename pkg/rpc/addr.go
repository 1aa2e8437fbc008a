package rpc

import (
	"net"
	"net/netip"
)

// AddrPort returns the IP address and port of a TCP or UDP address (or of
// any address whose String is host:port).
func AddrPort(a net.Addr) (netip.AddrPort, bool) {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.AddrPort(), true
	case *net.UDPAddr:
		return a.AddrPort(), true
	}
	if a == nil {
		return netip.AddrPort{}, false
	}
	ap, err := netip.ParseAddrPort(a.String())
	return ap, err == nil
}
