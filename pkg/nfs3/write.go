package nfs3

import (
	"golang.org/x/sys/unix"

	"github.com/rwxnfs/rwxnfs/pkg/fscred"
)

// stable_how.
const (
	unstable = 0
	dataSync = 1
	fileSync = 2
)

// WRITE: file data. A reply never claims more durability than is on disk:
// UNSTABLE writes are acknowledged as UNSTABLE with the boot verifier
// (the client keeps the data until a COMMIT with the same verifier), and
// DATA_SYNC / FILE_SYNC writes are synced before the reply.
func (c *call) write() Status {
	fh := readHandle(c.r)
	off := c.r.Uint64()
	count := c.r.Uint32()
	stable := c.r.Uint32()
	data := c.r.Opaque(MaxIO)
	if stable > fileSync {
		c.r.Fail(errBadTime)
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
	fail := func(st Status) Status {
		res.post = statOrNil(n)
		c.w.Uint32(uint32(st))
		res.write(c.w)
		return st
	}
	if int(count) < len(data) {
		data = data[:count]
	}
	cred := c.cred(n.Vol)
	switch {
	case n.Vol.Options.ReadOnly:
		return fail(errROFS)
	case isDir(&pre):
		return fail(errIsDir)
	case !isReg(&pre):
		return fail(errInval)
	case !mayWrite(&pre, cred):
		return fail(errAccess)
	case off > 1<<63-1 || off+uint64(len(data)) > 1<<63-1:
		return fail(errFBig)
	}
	fd, err := n.IOFD(true)
	if err != nil {
		return fail(c.status(err))
	}
	put := func() error {
		for done := 0; done < len(data); {
			k, err := unix.Pwrite(fd, data[done:], int64(off)+int64(done))
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return err
			}
			done += k
		}
		return nil
	}
	put = quotaWrite(n, fd, off, len(data), put)
	// Writing to a set-id file as a non-root caller must clear the set-id
	// bits, which the kernel does only for a writer without CAP_FSETID.
	if pre.Mode&(unix.S_ISUID|unix.S_ISGID) != 0 && !cred.IsRoot() {
		err = fscred.Do(cred, put)
	} else {
		err = put()
	}
	if err == nil {
		switch stable {
		case dataSync:
			err = unix.Fdatasync(fd)
		case fileSync:
			err = unix.Fsync(fd)
		}
	}
	if err != nil {
		return fail(c.status(err))
	}
	if c.h.Metrics != nil {
		c.h.Metrics.BytesWritten(len(data))
	}
	var post unix.Stat_t
	if unix.Fstat(fd, &post) == nil {
		res.post = &post
	}
	c.w.Uint32(uint32(OK))
	res.write(c.w)
	c.w.Uint32(uint32(len(data)))
	c.w.Uint32(stable)
	c.w.FixedOpaque(c.h.verifier[:])
	return OK
}

// COMMIT: make earlier UNSTABLE writes durable. The whole file is synced
// whatever range is asked for; that is always at least what was asked.
func (c *call) commit() Status {
	fh := readHandle(c.r)
	c.r.Uint64()
	c.r.Uint32()
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
	if !isReg(&pre) {
		res.post = &pre
		c.w.Uint32(uint32(errInval))
		res.write(c.w)
		return errInval
	}
	fd, err := n.IOFD(false)
	if err == nil {
		err = unix.Fsync(fd)
	}
	res.post = statOrNil(n)
	if err != nil {
		st := c.status(err)
		c.w.Uint32(uint32(st))
		res.write(c.w)
		return st
	}
	c.w.Uint32(uint32(OK))
	res.write(c.w)
	c.w.FixedOpaque(c.h.verifier[:])
	return OK
}
