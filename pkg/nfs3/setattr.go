package nfs3

import (
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/rwxnfs/rwxnfs/pkg/exports"
	"github.com/rwxnfs/rwxnfs/pkg/fscred"
)

// SETATTR: change mode, owner, size or times, optionally guarded by the
// ctime the client last saw.
func (c *call) setattr() Status {
	fh := readHandle(c.r)
	sa := readSattr(c.r)
	guard := c.r.Bool()
	var guardCtime unix.Timespec
	if guard {
		guardCtime.Sec = int64(c.r.Uint32())
		guardCtime.Nsec = int64(c.r.Uint32())
	}
	if !c.args() {
		return OK
	}
	n, st := c.node(fh)
	if st != OK {
		c.w.Uint32(uint32(st))
		(&wcc{}).write(c.w)
		return st
	}
	var pre unix.Stat_t
	if st := c.stat(n, &pre); st != OK {
		c.w.Uint32(uint32(st))
		(&wcc{}).write(c.w)
		return st
	}
	res := wcc{pre: &pre, fsid: n.Vol.FSID}
	st = c.applySattr(n, &pre, sa, guard, guardCtime)
	res.post = statOrNil(n)
	c.w.Uint32(uint32(st))
	res.write(c.w)
	return st
}

func (c *call) applySattr(n *exports.Node, pre *unix.Stat_t, sa sattr, guard bool, guardCtime unix.Timespec) Status {
	if guard && (pre.Ctim.Sec != guardCtime.Sec || pre.Ctim.Nsec != guardCtime.Nsec) {
		return errNotSync
	}
	if !sa.setMode && !sa.setUID && !sa.setGID && !sa.setSize && sa.atime.how == dontChange && sa.mtime.how == dontChange {
		return OK
	}
	if n.Vol.Options.ReadOnly {
		return errROFS
	}
	cred := c.cred(n.Vol)
	return c.status(setAttrs(n, pre, sa, cred))
}

// setAttrs applies sa in the order size, owner, mode, times (a chown
// clears set-id bits, so mode goes after it). Everything but the size runs
// as the caller, so the kernel's rules for chmod, chown and utimes apply.
func setAttrs(n *exports.Node, pre *unix.Stat_t, sa sattr, cred fscred.Cred) error {
	if sa.setSize {
		switch {
		case isDir(pre):
			return unix.EISDIR
		case !isReg(pre):
			return unix.EINVAL
		case !mayWrite(pre, cred):
			return unix.EACCES
		}
		fd, err := n.IOFD(true)
		if err != nil {
			return err
		}
		if err := truncateCharged(n, fd, int64(sa.size)); err != nil {
			return err
		}
	}
	proc := procPath(n.FD())
	return fscred.Do(cred, func() error {
		if sa.setUID || sa.setGID {
			uid, gid := -1, -1
			if sa.setUID {
				uid = int(sa.uid)
			}
			if sa.setGID {
				gid = int(sa.gid)
			}
			if err := unix.Fchownat(n.FD(), "", uid, gid, unix.AT_EMPTY_PATH); err != nil {
				return err
			}
		}
		if isLnk(pre) {
			// Symlinks have no mode of their own on Linux, and times are
			// not settable through an O_PATH descriptor of one.
			if sa.atime.how != dontChange || sa.mtime.how != dontChange {
				return unix.EOPNOTSUPP
			}
			return nil
		}
		if sa.setMode {
			if err := unix.Fchmodat(unix.AT_FDCWD, proc, sa.mode, 0); err != nil {
				return err
			}
		}
		if sa.atime.how != dontChange || sa.mtime.how != dontChange {
			ts := []unix.Timespec{sa.atime.timespec(), sa.mtime.timespec()}
			if err := unix.UtimesNanoAt(unix.AT_FDCWD, proc, ts, 0); err != nil {
				return err
			}
		}
		return nil
	})
}

// procPath names a descriptor through /proc, for the calls (chmod,
// utimes, link) that will not take an O_PATH descriptor directly but do
// follow this link to the very inode it holds, with the caller's rights.
func procPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }
