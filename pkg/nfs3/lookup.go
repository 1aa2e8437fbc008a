package nfs3

import (
	"golang.org/x/sys/unix"

	"github.com/rwxnfs/rwxnfs/pkg/fscred"
)

// LOOKUP: the handle of a name in a directory. ".." at a volume's root is
// the root itself, so no client climbs out of its volume.
func (c *call) lookup() Status {
	fh := readHandle(c.r)
	name := c.r.String(maxPath)
	if !c.args() {
		return OK
	}
	dir, st := c.node(fh)
	if st != OK {
		c.w.Uint32(uint32(st))
		writePostOp(c.w, nil, 0)
		return st
	}
	var dattr unix.Stat_t
	if st := c.stat(dir, &dattr); st != OK {
		c.w.Uint32(uint32(st))
		writePostOp(c.w, nil, 0)
		return st
	}
	fail := func(st Status) Status {
		c.w.Uint32(uint32(st))
		writePostOp(c.w, &dattr, dir.Vol.FSID)
		return st
	}
	if !isDir(&dattr) {
		return fail(errNotDir)
	}
	switch {
	case name == "" || len(name) > maxName:
		if len(name) > maxName {
			return fail(errNameLong)
		}
		return fail(errNoEnt)
	case containsSlashOrNul(name):
		return fail(errNoEnt)
	}
	cred := c.cred(dir.Vol)
	if (name == "." || name == ".." && dir.IsRoot()) && permits(&dattr, cred, false)&accessLookup == 0 {
		return fail(errAccess)
	}
	var handle []byte
	var attr unix.Stat_t
	switch {
	case name == ".", name == ".." && dir.IsRoot():
		handle, attr = dir.Handle, dattr
	default:
		err := fscred.Do(cred, func() error {
			if err := unix.Fstatat(dir.FD(), name, &attr, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return err
			}
			var err error
			handle, err = c.h.Table.HandleAt(dir.Vol, dir.FD(), name)
			return err
		})
		if err != nil {
			return fail(c.status(err))
		}
	}
	c.w.Uint32(uint32(OK))
	c.w.Opaque(handle)
	writePostOp(c.w, &attr, dir.Vol.FSID)
	writePostOp(c.w, &dattr, dir.Vol.FSID)
	return OK
}

func containsSlashOrNul(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' || s[i] == 0 {
			return true
		}
	}
	return false
}
