package nfs3

import (
	"golang.org/x/sys/unix"
)

// fsCall resolves the handle of FSSTAT, FSINFO and PATHCONF, which reply
// with the object's attributes whether they succeed or not.
func (c *call) fsCall() (*unix.Stat_t, uint64, int, Status) {
	fh := readHandle(c.r)
	if !c.args() {
		return nil, 0, -1, errInval
	}
	n, st := c.node(fh)
	if st != OK {
		c.w.Uint32(uint32(st))
		writePostOp(c.w, nil, 0)
		return nil, 0, -1, st
	}
	var attr unix.Stat_t
	if st := c.stat(n, &attr); st != OK {
		c.w.Uint32(uint32(st))
		writePostOp(c.w, nil, 0)
		return nil, 0, -1, st
	}
	return &attr, n.Vol.FSID, n.FD(), OK
}

// FSSTAT: space and inodes of the backing file system.
func (c *call) fsstat() Status {
	attr, fsid, fd, st := c.fsCall()
	if st != OK {
		return st
	}
	var sf unix.Statfs_t
	if err := unix.Fstatfs(fd, &sf); err != nil {
		st := c.status(err)
		c.w.Uint32(uint32(st))
		writePostOp(c.w, attr, fsid)
		return st
	}
	bsize := uint64(sf.Frsize)
	if bsize == 0 {
		bsize = uint64(sf.Bsize)
	}
	tb, fb, ab, tf, ff, af := sf.Blocks*bsize, sf.Bfree*bsize, sf.Bavail*bsize, sf.Files, sf.Ffree, sf.Ffree
	quotaFSStat(c.h.Table.VolumeByFSID(fsid), &tb, &fb, &ab, &tf, &ff, &af)
	c.w.Uint32(uint32(OK))
	writePostOp(c.w, attr, fsid)
	c.w.Uint64(tb)
	c.w.Uint64(fb)
	c.w.Uint64(ab)
	c.w.Uint64(tf)
	c.w.Uint64(ff)
	c.w.Uint64(af)
	c.w.Uint32(0) // invarsec: may change at any time
	return OK
}

// FSINFO properties.
const (
	fsfLink        = 0x01
	fsfSymlink     = 0x02
	fsfHomogeneous = 0x08
	fsfCanSetTime  = 0x10
)

// FSINFO: transfer sizes and capabilities.
func (c *call) fsinfo() Status {
	attr, fsid, _, st := c.fsCall()
	if st != OK {
		return st
	}
	c.w.Uint32(uint32(OK))
	writePostOp(c.w, attr, fsid)
	c.w.Uint32(MaxIO) // rtmax
	c.w.Uint32(MaxIO) // rtpref
	c.w.Uint32(4096)  // rtmult
	c.w.Uint32(MaxIO) // wtmax
	c.w.Uint32(MaxIO) // wtpref
	c.w.Uint32(4096)  // wtmult
	c.w.Uint32(dirPrefSize)
	c.w.Uint64(1<<63 - 1) // maxfilesize
	c.w.Uint32(0)         // time_delta: nanoseconds
	c.w.Uint32(1)
	c.w.Uint32(fsfLink | fsfSymlink | fsfHomogeneous | fsfCanSetTime)
	return OK
}

// PATHCONF: name limits.
func (c *call) pathconf() Status {
	attr, fsid, _, st := c.fsCall()
	if st != OK {
		return st
	}
	c.w.Uint32(uint32(OK))
	writePostOp(c.w, attr, fsid)
	c.w.Uint32(65000)   // linkmax (ext4's)
	c.w.Uint32(maxName) // name_max
	c.w.Bool(true)      // no_trunc
	c.w.Bool(true)      // chown_restricted
	c.w.Bool(false)     // case_insensitive
	c.w.Bool(true)      // case_preserving
	return OK
}
