package volfs

import (
	"context"

	"golang.org/x/sys/unix"

	"github.com/rwxnfs/rwxnfs/pkg/exports"
	"github.com/rwxnfs/rwxnfs/pkg/fscred"
	"github.com/rwxnfs/rwxnfs/pkg/vfs"
)

// Getattr implements vfs.FS.
func (fs *FS) Getattr(_ context.Context, c vfs.Caller, fh []byte) (vfs.Attr, error) {
	var st unix.Stat_t
	n, err := fs.node(&c, fh, &st, "GETATTR")
	if err != nil {
		return vfs.Attr{}, err
	}
	defer fs.t.Release(n)
	return attrOf(&st, n.Vol.FSID), nil
}

// Access implements vfs.FS: the rights come from the mode bits for the
// caller's (squashed) identity, masked by a read-only volume; the request
// is never echoed.
func (fs *FS) Access(_ context.Context, c vfs.Caller, fh []byte, want uint32) (vfs.AttrResult, uint32, error) {
	var st unix.Stat_t
	n, err := fs.node(&c, fh, &st, "ACCESS")
	if err != nil {
		return vfs.AttrResult{}, 0, err
	}
	defer fs.t.Release(n)
	res := vfs.AttrResult{Attr: attrOf(&st, n.Vol.FSID), HasAttr: true}
	return res, want & permits(&st, cred(&c, n), n.Vol.Options.ReadOnly), nil
}

// Readlink implements vfs.FS: a symlink's text, which the server never
// follows.
func (fs *FS) Readlink(_ context.Context, c vfs.Caller, fh []byte) (vfs.AttrResult, string, error) {
	var st unix.Stat_t
	n, err := fs.node(&c, fh, &st, "READLINK")
	if err != nil {
		return vfs.AttrResult{}, "", err
	}
	defer fs.t.Release(n)
	res := vfs.AttrResult{Attr: attrOf(&st, n.Vol.FSID), HasAttr: true}
	if !isLnk(&st) {
		return res, "", vfs.ErrInval
	}
	buf := make([]byte, vfs.MaxPath+1)
	k, err := unix.Readlinkat(n.FD(), "", buf)
	switch {
	case err != nil:
		return res, "", fs.fail("READLINK", err)
	case k > vfs.MaxPath:
		return res, "", vfs.ErrNameTooLong
	}
	return res, string(buf[:k]), nil
}

// Setattr implements vfs.FS.
func (fs *FS) Setattr(_ context.Context, c vfs.Caller, fh []byte, s vfs.SetAttr, check bool, guard vfs.Time) (vfs.Wcc, error) {
	var w vfs.Wcc
	var pre unix.Stat_t
	n, err := fs.node(&c, fh, &pre, "SETATTR")
	if err != nil {
		return w, err
	}
	defer fs.t.Release(n)
	before(&w, &pre)
	switch {
	case check && (pre.Ctim.Sec != guard.Sec || pre.Ctim.Nsec != guard.Nsec):
		err = vfs.ErrNotSync
	case s.Empty():
	case n.Vol.Options.ReadOnly:
		err = vfs.ErrROFS
	default:
		err = setAttrs(n, &pre, s, cred(&c, n))
		if err == nil {
			err = fs.commitAttrs(n, &pre)
		}
		err = fs.fail("SETATTR", err)
	}
	after(&w, n)
	return w, err
}

// setAttrs applies s in the order size, owner, mode, times (a chown
// clears set-id bits, so mode goes after it). Everything but the size runs
// as the caller, so the kernel's rules for chmod, chown and utimes apply;
// the size is checked here, as for WRITE, and charged to the quota.
func setAttrs(n *exports.Node, pre *unix.Stat_t, s vfs.SetAttr, id fscred.Cred) error {
	if s.SetSize {
		switch {
		case isDir(pre):
			return unix.EISDIR
		case !isReg(pre):
			return unix.EINVAL
		case !mayWrite(pre, id):
			return unix.EACCES
		}
		fd, err := n.IOFD(true)
		if err != nil {
			return err
		}
		if err := truncateCharged(n, fd, int64(s.Size)); err != nil {
			return err
		}
	}
	return fscred.Do(id, func() error {
		if s.SetUID || s.SetGID {
			uid, gid := -1, -1
			if s.SetUID {
				uid = int(s.UID)
			}
			if s.SetGID {
				gid = int(s.GID)
			}
			if err := unix.Fchownat(n.FD(), "", uid, gid, unix.AT_EMPTY_PATH); err != nil {
				return err
			}
		}
		if isLnk(pre) {
			// Symlinks have no mode of their own on Linux, and times are
			// not settable through an O_PATH descriptor of one.
			if s.Atime.How != vfs.KeepTime || s.Mtime.How != vfs.KeepTime {
				return unix.EOPNOTSUPP
			}
			return nil
		}
		if s.SetMode {
			mode := s.Mode
			if !isDir(pre) {
				mode = nonDirMode(n.Vol, mode)
			}
			if err := chmodFD(n.FD(), mode); err != nil {
				return err
			}
		}
		if s.Atime.How != vfs.KeepTime || s.Mtime.How != vfs.KeepTime {
			ts := []unix.Timespec{timespec(s.Atime), timespec(s.Mtime)}
			if err := utimesFD(n.FD(), ts); err != nil {
				return err
			}
		}
		return nil
	})
}

// FSStat implements vfs.FS: the backing file system's space and inodes,
// or, for a volume with limits, the limits (quota.go).
func (fs *FS) FSStat(_ context.Context, c vfs.Caller, fh []byte) (vfs.FSStat, error) {
	var res vfs.FSStat
	var st unix.Stat_t
	n, err := fs.node(&c, fh, &st, "FSSTAT")
	if err != nil {
		return res, err
	}
	defer fs.t.Release(n)
	res.Attr, res.HasAttr = attrOf(&st, n.Vol.FSID), true
	var sf unix.Statfs_t
	if err := unix.Fstatfs(n.FD(), &sf); err != nil {
		return res, fs.fail("FSSTAT", err)
	}
	bsize := uint64(sf.Frsize)
	if bsize == 0 {
		bsize = uint64(sf.Bsize)
	}
	res.TotalBytes, res.FreeBytes, res.AvailBytes = sf.Blocks*bsize, sf.Bfree*bsize, sf.Bavail*bsize
	res.TotalFiles, res.FreeFiles, res.AvailFiles = sf.Files, sf.Ffree, sf.Ffree
	quotaFSStat(n.Vol, &res.TotalBytes, &res.FreeBytes, &res.AvailBytes, &res.TotalFiles, &res.FreeFiles, &res.AvailFiles)
	return res, nil
}
