package nfs3

import "golang.org/x/sys/unix"

// GETATTR: the attributes of a file.
func (c *call) getattr() Status {
	fh := readHandle(c.r)
	if !c.args() {
		return OK
	}
	n, st := c.node(fh)
	if st != OK {
		c.w.Uint32(uint32(st))
		return st
	}
	var attr unix.Stat_t
	if st := c.stat(n, &attr); st != OK {
		c.w.Uint32(uint32(st))
		return st
	}
	c.w.Uint32(uint32(OK))
	writeFattr(c.w, &attr, n.Vol.FSID)
	return OK
}
