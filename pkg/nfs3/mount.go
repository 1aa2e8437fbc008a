package nfs3

import (
	"context"
	"net/netip"
	"sort"
	"strings"
	"sync"

	"github.com/rwxnfs/rwxnfs/pkg/nfs3/wire"
	"github.com/rwxnfs/rwxnfs/pkg/rpc"
	"github.com/rwxnfs/rwxnfs/pkg/vfs"
	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// Mount serves the MOUNT program: MNT hands out the handle of an exported
// path to a client the layer allows (it logs refusals); EXPORT lists what
// may be mounted (libnfs and showmount call it first); DUMP, UMNT and
// UMNTALL keep an advisory list of who mounted what. That list lives in
// memory: like rmtab, it is informational, and a restart does not
// invalidate any mount.
//
// What a caller can learn without credentials (MOUNT takes AUTH_NONE):
// EXPORT lists only the exports the caller's address may mount, and DUMP
// only the caller's own mounts. Volume names and the other clients of a
// multi-tenant server are not for every host that can reach the port
// (knfsd's mountd, built for one site, lists everything).
//
// The list is bounded (maxMountEntries): past that, mounts still work but
// are not listed.
type Mount struct {
	FS vfs.FS

	mu     sync.Mutex
	mounts map[wire.MountEntry]struct{}
}

const maxMountEntries = 16384

// Program returns the registration of the MOUNT program. Versions 1 and 2
// answer everything but MNT, whose v1/v2 handles are a different format.
func (m *Mount) Program() rpc.Program {
	return rpc.Program{Prog: MountProgram, Low: 1, High: wire.MountVersion, Name: "mount", Handler: m}
}

// ServeRPC implements rpc.Handler.
func (m *Mount) ServeRPC(ctx context.Context, req *rpc.Request, w *xdr.Writer) error {
	switch req.Proc {
	case wire.MountProcNull:
		return nil
	case wire.MountProcMnt:
		if req.Vers != wire.MountVersion {
			return rpc.ErrProcUnavail
		}
		var a wire.DirPath
		if a.Decode(req.Args) != nil {
			return rpc.ErrGarbageArgs
		}
		res := m.mnt(ctx, req, a.Path)
		res.Encode(w)
		return nil
	case wire.MountProcDump:
		host := req.RemoteIP.String()
		m.mu.Lock()
		var list wire.MountList
		for e := range m.mounts {
			if e.Host == host {
				list = append(list, e)
			}
		}
		m.mu.Unlock()
		sort.Slice(list, func(i, j int) bool {
			return list[i].Host < list[j].Host || list[i].Host == list[j].Host && list[i].Dir < list[j].Dir
		})
		list.Encode(w)
		return nil
	case wire.MountProcUmnt:
		var a wire.DirPath
		if a.Decode(req.Args) != nil || len(a.Path) > wire.MaxMountPath {
			return rpc.ErrGarbageArgs
		}
		m.mu.Lock()
		delete(m.mounts, wire.MountEntry{Host: req.RemoteIP.String(), Dir: a.Path})
		m.mu.Unlock()
		return nil
	case wire.MountProcUmntAll:
		host := req.RemoteIP.String()
		m.mu.Lock()
		for e := range m.mounts {
			if e.Host == host {
				delete(m.mounts, e)
			}
		}
		m.mu.Unlock()
		return nil
	case wire.MountProcExport:
		var list wire.Exports
		for _, e := range m.FS.Exports() {
			if allows(e.Clients, req.RemoteIP) {
				list = append(list, wire.Export{Dir: e.Path, Groups: e.Clients})
			}
		}
		list.Encode(w)
		return nil
	}
	return rpc.ErrProcUnavail
}

func (m *Mount) mnt(ctx context.Context, req *rpc.Request, path string) wire.MntRes {
	if len(path) > wire.MaxMountPath {
		return wire.MntRes{Status: wire.MountErrNameTooLong}
	}
	fh, err := m.FS.Mount(ctx, caller(req), path)
	if err != nil {
		return wire.MntRes{Status: mountStatus(err)}
	}
	m.mu.Lock()
	if m.mounts == nil {
		m.mounts = make(map[wire.MountEntry]struct{})
	}
	if len(m.mounts) < maxMountEntries {
		m.mounts[wire.MountEntry{Host: req.RemoteIP.String(), Dir: strings.TrimRight(path, "/")}] = struct{}{}
	}
	m.mu.Unlock()
	return wire.MntRes{Status: wire.MountOK, FH: fh, Flavors: []uint32{rpc.AuthSys}}
}

// allows reports whether an export's client list (address prefixes; empty:
// any) admits ip. A prefix that does not parse admits nobody.
func allows(clients []string, ip netip.Addr) bool {
	if len(clients) == 0 {
		return true
	}
	for _, c := range clients {
		if p, err := netip.ParsePrefix(c); err == nil && ip.IsValid() && p.Contains(ip.Unmap()) {
			return true
		}
	}
	return false
}

// Mounts lists what clients mounted (MNT without a UMNT since), as DUMP
// does: the client's address and the path it mounted.
func (m *Mount) Mounts() []wire.MountEntry {
	m.mu.Lock()
	defer m.mu.Unlock()
	list := make([]wire.MountEntry, 0, len(m.mounts))
	for e := range m.mounts {
		list = append(list, e)
	}
	return list
}
