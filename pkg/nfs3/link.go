package nfs3

import (
	"golang.org/x/sys/unix"

	"github.com/rwxnfs/rwxnfs/pkg/fscred"
)

// LINK: a hard link to a file in the same volume, as the caller. The link
// is made through /proc because linkat with AT_EMPTY_PATH needs
// CAP_DAC_READ_SEARCH, which the caller's identity does not carry.
func (c *call) link() Status {
	fileFH := readHandle(c.r)
	dirFH := readHandle(c.r)
	name := c.r.String(maxPath)
	if !c.args() {
		return OK
	}
	file, st := c.node(fileFH)
	var fattr *unix.Stat_t
	var d *dirop
	if st == OK {
		fattr = statOrNil(file)
		d, st = c.beginDirop(dirFH, name)
	} else {
		d = &dirop{c: c}
	}
	if st == OK && file.Vol != d.dir.Vol {
		st = errXDev
	}
	if st == OK && fattr != nil && isDir(fattr) {
		st = errIsDir
	}
	if st == OK {
		st = linkAllowed(d.dir.Vol)
	}
	if st == OK {
		err := fscred.Do(c.cred(d.dir.Vol), func() error {
			return unix.Linkat(unix.AT_FDCWD, procPath(file.FD()), d.dir.FD(), name, unix.AT_SYMLINK_FOLLOW)
		})
		st = d.finish(err)
		fattr = statOrNil(file)
	}
	if d.dir != nil && d.wcc.post == nil {
		d.wcc.post = statOrNil(d.dir)
	}
	c.w.Uint32(uint32(st))
	fsid := uint64(0)
	if file != nil {
		fsid = file.Vol.FSID
	}
	writePostOp(c.w, fattr, fsid)
	d.wcc.write(c.w)
	return st
}
