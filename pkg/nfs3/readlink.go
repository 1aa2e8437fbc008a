package nfs3

import "golang.org/x/sys/unix"

// READLINK: a symlink's text. The server never follows it.
func (c *call) readlink() Status {
	fh := readHandle(c.r)
	if !c.args() {
		return OK
	}
	n, st := c.node(fh)
	fail := func(st Status, attr *unix.Stat_t) Status {
		c.w.Uint32(uint32(st))
		writePostOp(c.w, attr, n.Vol.FSID)
		return st
	}
	if st != OK {
		c.w.Uint32(uint32(st))
		writePostOp(c.w, nil, 0)
		return st
	}
	var attr unix.Stat_t
	if st := c.stat(n, &attr); st != OK {
		return fail(st, nil)
	}
	if !isLnk(&attr) {
		return fail(errInval, &attr)
	}
	buf := make([]byte, maxPath+1)
	k, err := unix.Readlinkat(n.FD(), "", buf)
	if err != nil {
		return fail(c.status(err), &attr)
	}
	if k > maxPath {
		return fail(errNameLong, &attr)
	}
	c.w.Uint32(uint32(OK))
	writePostOp(c.w, &attr, n.Vol.FSID)
	c.w.Opaque(buf[:k])
	return OK
}
