package nfs3

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/rwxnfs/rwxnfs/pkg/exports"
	"github.com/rwxnfs/rwxnfs/pkg/fscred"
	"github.com/rwxnfs/rwxnfs/pkg/rpc"
	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// MOUNT procedures (the same numbers in versions 1-3).
const (
	mountNull    = 0
	mountMnt     = 1
	mountDump    = 2
	mountUmnt    = 3
	mountUmntAll = 4
	mountExport  = 5
)

// mountstat3 values.
const (
	mntOK     = 0
	mntNoEnt  = 2
	mntAccess = 13
	mntNotDir = 20
	mntNameTL = 63
)

// maxMountPath is MNTPATHLEN.
const maxMountPath = 1024

// Mount serves the MOUNT program: MNT hands out a volume's root handle to
// clients on its allow-list; EXPORT lists volumes (libnfs and showmount
// call it first); DUMP, UMNT and UMNTALL keep an advisory list of who
// mounted what. That list lives in memory: like rmtab, it is informational,
// and a restart does not invalidate any mount.
type Mount struct {
	Table *exports.Table
	Log   *slog.Logger

	mu     sync.Mutex
	mounts map[mountEntry]struct{}
}

type mountEntry struct{ host, dir string }

// Program returns the registration of the MOUNT program. Versions 1 and 2
// answer everything but MNT, whose v1/v2 handles are a different format.
func (m *Mount) Program() rpc.Program {
	return rpc.Program{Prog: MountProgram, Low: 1, High: 3, Name: "mount", Handler: m}
}

// ServeRPC implements rpc.Handler.
func (m *Mount) ServeRPC(_ context.Context, req *rpc.Request, w *xdr.Writer) error {
	r := req.Args
	switch req.Proc {
	case mountNull:
		return nil
	case mountMnt:
		if req.Vers != 3 {
			return rpc.ErrProcUnavail
		}
		path := r.String(maxMountPath + 1)
		if r.Err() != nil {
			return rpc.ErrGarbageArgs
		}
		return m.mnt(req, path, w)
	case mountDump:
		m.mu.Lock()
		list := make([]mountEntry, 0, len(m.mounts))
		for e := range m.mounts {
			list = append(list, e)
		}
		m.mu.Unlock()
		sort.Slice(list, func(i, j int) bool {
			return list[i].host < list[j].host || list[i].host == list[j].host && list[i].dir < list[j].dir
		})
		for _, e := range list {
			w.Bool(true)
			w.String(e.host)
			w.String(e.dir)
		}
		w.Bool(false)
		return nil
	case mountUmnt:
		path := r.String(maxMountPath)
		if r.Err() != nil {
			return rpc.ErrGarbageArgs
		}
		m.mu.Lock()
		delete(m.mounts, mountEntry{req.RemoteIP.String(), path})
		m.mu.Unlock()
		return nil
	case mountUmntAll:
		host := req.RemoteIP.String()
		m.mu.Lock()
		for e := range m.mounts {
			if e.host == host {
				delete(m.mounts, e)
			}
		}
		m.mu.Unlock()
		return nil
	case mountExport:
		for _, v := range m.Table.Volumes() {
			w.Bool(true)
			w.String(v.Path())
			for _, p := range v.Options.Clients {
				w.Bool(true)
				w.String(p.String())
			}
			w.Bool(false)
		}
		w.Bool(false)
		return nil
	}
	return rpc.ErrProcUnavail
}

func (m *Mount) mnt(req *rpc.Request, path string, w *xdr.Writer) error {
	if len(path) > maxMountPath {
		w.Uint32(mntNameTL)
		return nil
	}
	v, sub, ok := m.Table.ByPath(path)
	if !ok {
		m.Log.Info("mount refused: no such volume", "client", req.RemoteIP, "path", path)
		w.Uint32(mntNoEnt)
		return nil
	}
	if !v.Options.AllowsClient(req.RemoteIP) {
		m.Log.Warn("mount refused: client not on the volume's allow-list", "client", req.RemoteIP, "volume", v.ID)
		w.Uint32(mntAccess)
		return nil
	}
	handle := v.Root().Handle
	if len(sub) > 0 {
		var st uint32
		handle, st = m.subdir(v, sub, v.Options.Cred(req.Sys))
		if st != mntOK {
			m.Log.Info("mount refused: bad subdirectory", "client", req.RemoteIP, "path", path, "status", st)
			w.Uint32(st)
			return nil
		}
	}
	m.mu.Lock()
	if m.mounts == nil {
		m.mounts = make(map[mountEntry]struct{})
	}
	m.mounts[mountEntry{req.RemoteIP.String(), strings.TrimRight(path, "/")}] = struct{}{}
	m.mu.Unlock()
	m.Log.Info("mounted", "client", req.RemoteIP, "volume", v.ID)
	w.Uint32(mntOK)
	w.Opaque(handle)
	w.Uint32(1) // one flavor
	w.Uint32(rpc.AuthSys)
	return nil
}

// subdir walks a subdirectory path inside a volume as the caller, one
// component at a time, never following symlinks and never accepting "."
// or "..", so a mount path cannot leave its volume.
func (m *Mount) subdir(v *exports.Volume, sub []string, cred fscred.Cred) ([]byte, uint32) {
	var handle []byte
	err := fscred.Do(cred, func() error {
		dirfd := v.Root().FD()
		defer func() {
			if dirfd != v.Root().FD() {
				unix.Close(dirfd)
			}
		}()
		for _, name := range sub {
			if name == "." || name == ".." || len(name) > maxName {
				return unix.ENOENT
			}
			fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return err
			}
			if dirfd != v.Root().FD() {
				unix.Close(dirfd)
			}
			dirfd = fd
		}
		var err error
		handle, err = m.Table.HandleAt(v, dirfd, "")
		return err
	})
	switch {
	case err == nil:
		return handle, mntOK
	case errors.Is(err, unix.EACCES):
		return nil, mntAccess
	case errors.Is(err, unix.ENOTDIR), errors.Is(err, unix.ELOOP):
		return nil, mntNotDir
	}
	return nil, mntNoEnt
}
