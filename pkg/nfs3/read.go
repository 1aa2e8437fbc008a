package nfs3

import (
	"golang.org/x/sys/unix"
)

// READ: file data. The data is read straight into the reply buffer
// through a descriptor kept open on the node.
func (c *call) read() Status {
	fh := readHandle(c.r)
	off := c.r.Uint64()
	count := c.r.Uint32()
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
	fail := func(st Status) Status {
		c.w.Uint32(uint32(st))
		writePostOp(c.w, &attr, n.Vol.FSID)
		return st
	}
	switch {
	case isDir(&attr):
		return fail(errIsDir)
	case !isReg(&attr):
		return fail(errInval)
	case !mayRead(&attr, c.cred(n.Vol)):
		return fail(errAccess)
	case off > 1<<63-1:
		return fail(errInval)
	}
	count = min(count, MaxIO)
	fd, err := n.IOFD(false)
	if err != nil {
		return fail(c.status(err))
	}
	c.w.Uint32(uint32(OK))
	writePostOp(c.w, &attr, n.Vol.FSID)
	head := c.w.Len()
	c.w.Uint32(0)   // count
	c.w.Bool(false) // eof
	c.w.Uint32(0)   // data length
	buf := c.w.Grow(int(count))
	got := 0
	for got < len(buf) {
		k, err := unix.Pread(fd, buf[got:], int64(off)+int64(got))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			c.w.Truncate(head - fattrSize - 8)
			return fail(c.status(err))
		}
		if k == 0 {
			break
		}
		got += k
	}
	c.w.Truncate(head + 12 + got)
	c.w.Pad(got)
	eof := got < int(count) || int64(off)+int64(got) >= attr.Size
	c.w.PutUint32At(head, uint32(got))
	if eof {
		c.w.PutUint32At(head+4, 1)
	}
	c.w.PutUint32At(head+8, uint32(got))
	if c.h.Metrics != nil {
		c.h.Metrics.BytesRead(got)
	}
	return OK
}
