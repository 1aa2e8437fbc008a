// Package portmap is the portmapper program (100000): PMAP version 2 and
// rpcbind versions 3 and 4, answered from a fixed table of what nfsd
// serves, and the one client call lock callbacks need (GETPORT).
package portmap

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rwxnfs/rwxnfs/pkg/rpc"
	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// Clients such as mount.nfs and the kernel's lockd find the ports of
// MOUNT, NFS and NLM here, so a plain "mount -o vers=3" needs no port
// options. The table holds only what nfsd itself serves; SET and UNSET
// from other processes are refused.

// Program number, PMAP version and well-known port.
const (
	Prog     = 100000
	PMAPVers = 2
	Port     = 111
)

// Transport protocol numbers of PMAP v2.
const (
	IPProtoTCP = 6
	IPProtoUDP = 17
)

// Mapping says that a program version is served on a transport and port.
type Mapping struct {
	Prog, Vers uint32
	Network    string // "tcp" or "udp"
	Port       int
}

// Table answers portmapper calls from a fixed table of mappings.
type Table struct {
	mu   sync.RWMutex
	maps []Mapping
}

// Add registers programs served on a port.
func (p *Table) Add(ms ...Mapping) {
	p.mu.Lock()
	p.maps = append(p.maps, ms...)
	p.mu.Unlock()
}

// Mappings returns a copy of the table.
func (p *Table) Mappings() []Mapping {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return append([]Mapping(nil), p.maps...)
}

func (p *Table) lookup(prog, vers uint32, network string, anyVers bool) (Mapping, bool) {
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
func (p *Table) Program() rpc.Program {
	return rpc.Program{Prog: Prog, Low: PMAPVers, High: 4, Name: "portmap", Handler: p}
}

// Procedures shared by PMAP v2 and rpcbind v3/v4 (same numbers).
const (
	ProcNull        = 0
	ProcSet         = 1
	ProcUnset       = 2
	ProcGetport     = 3 // rpcbind: GETADDR
	ProcDump        = 4
	ProcGettime     = 6 // rpcbind
	ProcGetVersAddr = 9 // rpcbind v4
)

// ServeRPC implements rpc.Handler.
func (p *Table) ServeRPC(_ context.Context, req *rpc.Request, w *xdr.Writer) error {
	r := req.Args
	if req.Vers == 2 {
		switch req.Proc {
		case ProcNull:
			return nil
		case ProcSet, ProcUnset:
			w.Bool(false)
			return nil
		case ProcGetport:
			prog, vers, prot := r.Uint32(), r.Uint32(), r.Uint32()
			r.Uint32() // port, unused
			if r.Err() != nil {
				return rpc.ErrGarbageArgs
			}
			network := map[uint32]string{IPProtoTCP: "tcp", IPProtoUDP: "udp"}[prot]
			port := 0
			if m, ok := p.lookup(prog, vers, network, false); ok && network != "" {
				port = m.Port
			}
			w.Uint32(uint32(port))
			return nil
		case ProcDump:
			for _, m := range p.Mappings() {
				w.Bool(true)
				w.Uint32(m.Prog)
				w.Uint32(m.Vers)
				prot := uint32(IPProtoTCP)
				if m.Network == "udp" {
					prot = IPProtoUDP
				}
				w.Uint32(prot)
				w.Uint32(uint32(m.Port))
			}
			w.Bool(false)
			return nil
		}
		return rpc.ErrProcUnavail
	}
	switch req.Proc {
	case ProcNull:
		return nil
	case ProcSet, ProcUnset:
		readRPCB(r)
		if r.Err() != nil {
			return rpc.ErrGarbageArgs
		}
		w.Bool(false)
		return nil
	case ProcGetport, ProcGetVersAddr:
		prog, vers, netid, _ := readRPCB(r)
		if r.Err() != nil {
			return rpc.ErrGarbageArgs
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
		} else if req.Proc == ProcGetVersAddr {
			if m, ok := p.lookup(prog, vers, network, true); ok {
				uaddr = universalAddr(req.Local, m.Port)
			}
		}
		w.String(uaddr)
		return nil
	case ProcDump:
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
	case ProcGettime:
		w.Uint32(uint32(time.Now().Unix()))
		return nil
	}
	return rpc.ErrProcUnavail
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
	if ap, ok := rpc.AddrPort(local); ok {
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

// ErrNotRegistered means a portmapper does not know the program asked for.
var ErrNotRegistered = errors.New("portmap: program not registered")

// Getport asks the portmapper on c (PMAP v2 GETPORT) for the TCP port of
// a program version.
func Getport(ctx context.Context, c *rpc.Client, prog, vers uint32) (int, error) {
	res, err := c.Call(ctx, Prog, PMAPVers, ProcGetport, func(w *xdr.Writer) {
		w.Uint32(prog)
		w.Uint32(vers)
		w.Uint32(IPProtoTCP)
		w.Uint32(0)
	})
	if err != nil {
		return 0, err
	}
	r := xdr.NewReader(res)
	port := r.Uint32()
	if r.Err() != nil {
		return 0, r.Err()
	}
	if port == 0 || port > 65535 {
		return 0, fmt.Errorf("%w: program %d version %d", ErrNotRegistered, prog, vers)
	}
	return int(port), nil
}
