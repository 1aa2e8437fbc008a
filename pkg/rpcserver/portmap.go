package rpcserver

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// The portmapper (program 100000): PMAP version 2 and rpcbind versions 3
// and 4. Clients such as mount.nfs and the kernel's lockd find the ports
// of MOUNT, NFS and NLM here, so a plain "mount -o vers=3" needs no port
// options. The table holds only what nfsd itself serves; SET and UNSET
// from other processes are refused.

// Program number and well-known port.
const (
	PortmapProg = 100000
	PortmapPort = 111
)

const (
	ipprotoTCP = 6
	ipprotoUDP = 17
)

// Mapping says that a program version is served on a transport and port.
type Mapping struct {
	Prog, Vers uint32
	Network    string // "tcp" or "udp"
	Port       int
}

// Portmap answers portmapper calls from a fixed table.
type Portmap struct {
	mu   sync.RWMutex
	maps []Mapping
}

// Add registers programs served on a port.
func (p *Portmap) Add(ms ...Mapping) {
	p.mu.Lock()
	p.maps = append(p.maps, ms...)
	p.mu.Unlock()
}

// Mappings returns a copy of the table.
func (p *Portmap) Mappings() []Mapping {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return append([]Mapping(nil), p.maps...)
}

func (p *Portmap) lookup(prog, vers uint32, network string, anyVers bool) (Mapping, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	for _, m := range p.maps {
		if m.Prog == prog && (anyVers || m.Vers == vers) && (network == "" || m.Network == network) {
			return m, true
		}
	}
	return Mapping{}, false
}

// Program returns the registration of the portmapper program.
func (p *Portmap) Program() Program {
	return Program{Prog: PortmapProg, Low: 2, High: 4, Name: "portmap", Handler: p}
}

// Procedures shared by PMAP v2 and rpcbind v3/v4 (same numbers).
const (
	pmapNull    = 0
	pmapSet     = 1
	pmapUnset   = 2
	pmapGetport = 3 // rpcbind: GETADDR
	pmapDump    = 4
	rpcbGettime = 6
	rpcbGetVers = 9 // v4 GETVERSADDR
)

// ServeRPC implements Handler.
func (p *Portmap) ServeRPC(_ context.Context, req *Request, w *xdr.Writer) error {
	r := req.Args
	if req.Vers == 2 {
		switch req.Proc {
		case pmapNull:
			return nil
		case pmapSet, pmapUnset:
			w.Bool(false)
			return nil
		case pmapGetport:
			prog, vers, prot := r.Uint32(), r.Uint32(), r.Uint32()
			r.Uint32() // port, unused
			if r.Err() != nil {
				return ErrGarbageArgs
			}
			network := map[uint32]string{ipprotoTCP: "tcp", ipprotoUDP: "udp"}[prot]
			port := 0
			if m, ok := p.lookup(prog, vers, network, false); ok && network != "" {
				port = m.Port
			}
			w.Uint32(uint32(port))
			return nil
		case pmapDump:
			for _, m := range p.Mappings() {
				w.Bool(true)
				w.Uint32(m.Prog)
				w.Uint32(m.Vers)
				prot := uint32(ipprotoTCP)
				if m.Network == "udp" {
					prot = ipprotoUDP
				}
				w.Uint32(prot)
				w.Uint32(uint32(m.Port))
			}
			w.Bool(false)
			return nil
		}
		return ErrProcUnavail
	}
	switch req.Proc {
	case pmapNull:
		return nil
	case pmapSet, pmapUnset:
		readRPCB(r)
		if r.Err() != nil {
			return ErrGarbageArgs
		}
		w.Bool(false)
		return nil
	case pmapGetport, rpcbGetVers:
		prog, vers, netid, _ := readRPCB(r)
		if r.Err() != nil {
			return ErrGarbageArgs
		}
		uaddr := ""
		network := netidNetwork(netid)
		if network == "" && netid != "" {
			w.String("")
			return nil
		}
		if network == "" {
			network = req.Network
		}
		// GETADDR wants the exact version; GETVERSADDR (v4) accepts any.
		if m, ok := p.lookup(prog, vers, network, false); ok {
			uaddr = universalAddr(req.Local, m.Port)
		} else if req.Proc == rpcbGetVers {
			if m, ok := p.lookup(prog, vers, network, true); ok {
				uaddr = universalAddr(req.Local, m.Port)
			}
		}
		w.String(uaddr)
		return nil
	case pmapDump:
		for _, m := range p.Mappings() {
			w.Bool(true)
			w.Uint32(m.Prog)
			w.Uint32(m.Vers)
			w.String(m.Network)
			w.String(universalAddr(req.Local, m.Port))
			w.String("rwxnfs")
		}
		w.Bool(false)
		return nil
	case rpcbGettime:
		w.Uint32(uint32(time.Now().Unix()))
		return nil
	}
	return ErrProcUnavail
}

// readRPCB decodes an rpcb structure.
func readRPCB(r *xdr.Reader) (prog, vers uint32, netid, addr string) {
	prog, vers = r.Uint32(), r.Uint32()
	netid = r.String(64)
	addr = r.String(128)
	r.String(256) // owner
	return
}

// netidNetwork maps rpcbind network ids to our transports; IPv6 ids map to
// the same listeners, which accept both families.
func netidNetwork(netid string) string {
	switch netid {
	case "tcp", "tcp6":
		return "tcp"
	case "udp", "udp6":
		return "udp"
	}
	return ""
}

// universalAddr formats host:port as an rpcbind universal address
// ("h1.h2.h3.h4.p1.p2", or for IPv6 "x:x::x.p1.p2"), using the address the
// client reached us on: that is the one it can reach again.
func universalAddr(local net.Addr, port int) string {
	host := "0.0.0.0"
	if ap, ok := addrPort(local); ok {
		host = ap.Addr().Unmap().String()
	}
	return fmt.Sprintf("%s.%d.%d", host, port>>8, port&0xff)
}

// ParseUniversalAddr turns a universal address back into host and port.
func ParseUniversalAddr(u string) (string, int, error) {
	i := strings.LastIndexByte(u, '.')
	if i < 0 {
		return "", 0, fmt.Errorf("bad universal address %q", u)
	}
	j := strings.LastIndexByte(u[:i], '.')
	if j < 0 {
		return "", 0, fmt.Errorf("bad universal address %q", u)
	}
	hi, err1 := strconv.Atoi(u[j+1 : i])
	lo, err2 := strconv.Atoi(u[i+1:])
	if err1 != nil || err2 != nil || hi < 0 || hi > 255 || lo < 0 || lo > 255 {
		return "", 0, fmt.Errorf("bad universal address %q", u)
	}
	return u[:j], hi<<8 | lo, nil
}
