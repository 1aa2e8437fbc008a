// Package volfs is the file-operation layer: vfs.FS over the volumes of
// an exports.Table. Each method is one whole operation:
//
//	handle → node (exports: parse, MAC, open_by_handle_at; STALE, BADHANDLE)
//	→ the volume's rules: client on the allow-list, identity through the
//	  squash options (identity.go), read-only
//	→ permission checks the kernel cannot make for us (perm.go)
//	→ quota reservation, under the inode's or name's lock (quota.go)
//	→ the system call, on the node's descriptor, as the caller (fscred)
//	→ durability: data as the client asked (data.go), namespace changes
//	  through commitDir before the reply (durable.go)
//	→ attributes before and after, and errors as vfs.Error (errors.go).
//
// No protocol is known here: the NFSv3 and MOUNT front ends (pkg/nfs3)
// and NLM (through Volume) share these rules.
package volfs

import (
	"context"
	"log/slog"

	"golang.org/x/sys/unix"

	"github.com/rwxnfs/rwxnfs/pkg/exports"
	"github.com/rwxnfs/rwxnfs/pkg/fscred"
	"github.com/rwxnfs/rwxnfs/pkg/vfs"
)

// FS is the file-operation layer over a table's volumes.
type FS struct {
	t      *exports.Table
	log    *slog.Logger
	dirs   *dirCommits // the directory fsyncs (durable.go)
	noSync bool        // see UnsafeDisableSync
}

var _ vfs.FS = (*FS)(nil)

// New returns the layer over t.
func New(t *exports.Table, log *slog.Logger) *FS {
	if log == nil {
		log = slog.Default()
	}
	return &FS{t: t, log: log, dirs: newDirCommits(fsyncDir)}
}

// resolve turns a handle into a node for caller c: the handle must be one
// we minted, its file must exist, and c must be on the volume's
// allow-list. The caller releases the node (fs.t.Release).
func (fs *FS) resolve(c *vfs.Caller, fh []byte, op string) (*exports.Node, error) {
	n, err := fs.t.Resolve(fh)
	if err != nil {
		return nil, fs.fail(op, err)
	}
	if !n.Vol.Options.AllowsClient(c.Addr) {
		fs.t.Release(n)
		fs.log.Warn("client not on the volume's allow-list", "volume", n.Vol.ID, "client", c.Addr, "op", op)
		return nil, vfs.ErrAccess
	}
	return n, nil
}

// node resolves fh for c (see resolve) and reads its attributes into st.
// The caller releases the node.
func (fs *FS) node(c *vfs.Caller, fh []byte, st *unix.Stat_t, op string) (*exports.Node, error) {
	n, err := fs.resolve(c, fh, op)
	if err != nil {
		return nil, err
	}
	if err := fs.stat(n, st, op); err != nil {
		fs.t.Release(n)
		return nil, err
	}
	return n, nil
}

// stat returns a node's attributes, dropping it from the cache if its
// file is gone. Every attribute of a resolved node is read here.
func (fs *FS) stat(n *exports.Node, st *unix.Stat_t, op string) error {
	if err := n.Stat(st); err != nil {
		if err == exports.ErrStale {
			fs.t.Forget(n.Handle)
		}
		return fs.fail(op, err)
	}
	return nil
}

// after fills w's attributes after a change, if not known yet.
func after(w *vfs.Wcc, n *exports.Node) {
	if n == nil || w.HasAfter {
		return
	}
	var st unix.Stat_t
	if n.Stat(&st) == nil {
		w.After, w.HasAfter = attrOf(&st, n.Vol.FSID), true
	}
}

// before records attributes before a change.
func before(w *vfs.Wcc, st *unix.Stat_t) {
	w.Before = vfs.PreAttr{Size: uint64(st.Size), Mtime: timeOf(st.Mtim), Ctime: timeOf(st.Ctim)}
	w.HasBefore = true
}

// cred is the identity c acts as on n's volume.
func cred(c *vfs.Caller, n *exports.Node) fscred.Cred { return identity(&n.Vol.Options, c) }

// Volume implements vfs.FS.
func (fs *FS) Volume(_ context.Context, c vfs.Caller, fh []byte) (string, error) {
	n, err := fs.resolve(&c, fh, "LOCK")
	if err != nil {
		return "", err
	}
	defer fs.t.Release(n)
	return n.Vol.ID, nil
}
