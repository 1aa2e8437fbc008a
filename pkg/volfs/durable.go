package volfs

import (
	"bytes"

	"golang.org/x/sys/unix"

	"github.com/rwxnfs/rwxnfs/pkg/exports"
	"github.com/rwxnfs/rwxnfs/pkg/vfs"
)

// Durability. Every acknowledgement the layer gives goes through one of
// the functions below, so a change of strategy is a change here only.
//
// Namespace: RFC 1813 requires CREATE, MKDIR, SYMLINK, MKNOD, REMOVE,
// RMDIR, RENAME and LINK to be on stable storage before the reply. Each of
// them calls commitDir once, after its change and before its reply, with
// the directories it changed; on ext4 and xfs the directory's fsync also
// commits the journal transaction holding a new inode. Concurrent changes
// to one directory share an fsync (group commit, groupcommit.go): each
// waits for one that started after its change, so the promise is the same
// as one fsync per change and a lone change costs exactly one. The power-
// loss test (docs/powerloss.md) proves it. A cheaper way still (an intent
// log written with O_DSYNC and replayed at start-up) would replace
// commitDir's body, and the power-loss test must then prove that.
//
// Data: syncData is WRITE's stable_how and COMMIT's fsync.

// commitDir makes the namespace changes in dir (and in other, a second
// directory of a rename or nil) durable. A rename's two directories are
// committed one after the other, each by an fsync begun after the rename.
func (fs *FS) commitDir(dir, other *exports.Node) error {
	if fs.noSync {
		return nil
	}
	if err := fs.dirs.commit(dir); err != nil {
		return err
	}
	if other != nil && !sameNode(dir, other) {
		return fs.dirs.commit(other)
	}
	return nil
}

// sameNode reports whether two resolved nodes are one file. A rename
// within a directory resolves its handle twice, and the two nodes are
// distinct when the cache evicted the first before the second (a tree
// larger than the cache): the handle, not the node, says it is one
// directory, whose one fsync covers both entries.
func sameNode(a, b *exports.Node) bool {
	return a == b || bytes.Equal(a.Handle, b.Handle)
}

// fsyncDir fsyncs a directory node (its descriptor is O_PATH, which
// fsync does not take).
func fsyncDir(n *exports.Node) error {
	fd, err := unix.Openat(n.FD(), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Fsync(fd)
}

// commitAttrs makes a SETATTR's changes to n (size, owner, mode, times)
// durable before the reply: RFC 1813 asks it of every change but an
// UNSTABLE WRITE, and knfsd does it too (commit_metadata). Without it a
// power cut lost an acknowledged size change (the power-loss test, ext4).
// A regular file is fsynced, a directory too, through the group commit
// of its namespace changes (an fsync begun after the SETATTR covers both);
// any other inode (symlink, device, FIFO: nothing to fsync without
// opening it) by syncfs of its file system, a rare and dearer path.
func (fs *FS) commitAttrs(n *exports.Node, st *unix.Stat_t) error {
	if fs.noSync {
		return nil
	}
	switch {
	case isReg(st):
		fd, err := n.IOFD(false)
		if err != nil {
			return err
		}
		return unix.Fsync(fd)
	case isDir(st):
		return fs.dirs.commit(n)
	}
	fd, err := unix.Openat(n.Vol.Root().FD(), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Syncfs(fd)
}

// syncData makes data written through fd as durable as how asks.
func (fs *FS) syncData(fd int, how vfs.Stability) error {
	if fs.noSync {
		return nil
	}
	switch how {
	case vfs.DataSync:
		return unix.Fdatasync(fd)
	case vfs.FileSync:
		return unix.Fsync(fd)
	}
	return nil
}

// UnsafeDisableSync turns commitDir, commitAttrs and syncData into no-ops: every
// acknowledgement then breaks the durability promise. It exists only as
// the power-loss test's negative control (e2e/powerloss_test.go), which
// must see acknowledged operations lost when it is set; nfsd sets it only
// from RWXNFS_UNSAFE_NO_SYNC=1, and warns on every start.
func (fs *FS) UnsafeDisableSync() { fs.noSync = true }
