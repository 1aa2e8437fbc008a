package nfs3

import (
	"golang.org/x/sys/unix"

	"github.com/rwxnfs/rwxnfs/pkg/exports"
)

// dirop is a change to one directory's entries (create, remove, ...): it
// carries the directory and the weak cache consistency data the reply
// reports about it.
type dirop struct {
	c   *call
	dir *exports.Node
	wcc wcc
}

// beginDirop resolves the directory, records its attributes before the
// change, and checks what every namespace change needs: a directory, a
// valid single-component name, a writable volume.
func (c *call) beginDirop(fh []byte, name string) (*dirop, Status) {
	d := &dirop{c: c}
	dir, st := c.node(fh)
	if st != OK {
		return d, st
	}
	d.dir = dir
	d.wcc.fsid = dir.Vol.FSID
	var pre unix.Stat_t
	if st := c.stat(dir, &pre); st != OK {
		return d, st
	}
	d.wcc.pre = &pre
	switch {
	case !isDir(&pre):
		return d, errNotDir
	case dir.Vol.Options.ReadOnly:
		return d, errROFS
	}
	return d, checkName(name)
}

// finish makes the change durable and records the directory's new
// attributes. It returns the status to reply with.
func (d *dirop) finish(err error) Status {
	if err == nil && d.dir != nil {
		err = syncDir(d.dir)
	}
	if d.dir != nil {
		d.wcc.post = statOrNil(d.dir)
	}
	return d.c.status(err)
}

// fail replies with an error and the directory's wcc data.
func (d *dirop) fail(st Status) Status {
	if d.dir != nil && d.wcc.post == nil {
		d.wcc.post = statOrNil(d.dir)
	}
	d.c.w.Uint32(uint32(st))
	d.wcc.write(d.c.w)
	return st
}

// created replies for CREATE, MKDIR, SYMLINK and MKNOD: the new object's
// handle and attributes, then the directory's wcc data.
func (d *dirop) created(name string) Status {
	var attr unix.Stat_t
	var handle []byte
	err := unix.Fstatat(d.dir.FD(), name, &attr, unix.AT_SYMLINK_NOFOLLOW)
	if err == nil {
		handle, err = d.c.h.Table.HandleAt(d.dir.Vol, d.dir.FD(), name)
	}
	c := d.c
	c.w.Uint32(uint32(OK))
	if err != nil {
		// The object exists; the client can LOOKUP it.
		c.w.Bool(false)
		writePostOp(c.w, nil, 0)
	} else {
		c.w.Bool(true)
		c.w.Opaque(handle)
		writePostOp(c.w, &attr, d.dir.Vol.FSID)
	}
	d.wcc.write(c.w)
	return OK
}
