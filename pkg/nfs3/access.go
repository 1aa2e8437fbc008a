package nfs3

import "golang.org/x/sys/unix"

// ACCESS: which of the asked-for rights the caller has, computed from the
// mode bits for the caller's (squashed) identity, not echoed back.
func (c *call) access() Status {
	fh := readHandle(c.r)
	want := c.r.Uint32()
	if !c.args() {
		return OK
	}
	n, st := c.node(fh)
	if st != OK {
		c.w.Uint32(uint32(st))
		writePostOp(c.w, nil, 0)
		return st
	}
	var attr unix.Stat_t
	if st := c.stat(n, &attr); st != OK {
		c.w.Uint32(uint32(st))
		writePostOp(c.w, nil, 0)
		return st
	}
	c.w.Uint32(uint32(OK))
	writePostOp(c.w, &attr, n.Vol.FSID)
	c.w.Uint32(want & permits(&attr, c.cred(n.Vol), n.Vol.Options.ReadOnly))
	return OK
}
