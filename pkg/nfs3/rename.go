package nfs3

import (
	"golang.org/x/sys/unix"

	"github.com/rwxnfs/rwxnfs/pkg/fscred"
)

// RENAME: move an entry within a volume, as the caller. Handles name
// inodes, not paths, so every handle of the moved entry and of anything
// under it stays valid.
func (c *call) rename() Status {
	fromFH := readHandle(c.r)
	fromName := c.r.String(maxPath)
	toFH := readHandle(c.r)
	toName := c.r.String(maxPath)
	if !c.args() {
		return OK
	}
	from, st := c.beginDirop(fromFH, fromName)
	var to *dirop
	if st == OK {
		to, st = c.beginDirop(toFH, toName)
	} else {
		to = &dirop{c: c}
	}
	if st == OK && from.dir.Vol != to.dir.Vol {
		st = errXDev
	}
	if st == errExist {
		st = errInval // renaming "." or ".."
	}
	if st != OK {
		return c.renameReply(st, from, to)
	}
	var victim []byte
	err := fscred.Do(c.cred(from.dir.Vol), func() error {
		victim, _ = c.h.Table.HandleAt(to.dir.Vol, to.dir.FD(), toName)
		return renameCharged(from.dir, fromName, to.dir, toName, victim, func() error {
			return unix.Renameat(from.dir.FD(), fromName, to.dir.FD(), toName)
		})
	})
	if err == nil && victim != nil {
		c.h.Table.Forget(victim)
	}
	st = from.finish(err)
	if st == OK {
		st = to.finish(nil)
	} else {
		to.finish(err)
	}
	return c.renameReply(st, from, to)
}

func (c *call) renameReply(st Status, from, to *dirop) Status {
	for _, d := range []*dirop{from, to} {
		if d.dir != nil && d.wcc.post == nil {
			d.wcc.post = statOrNil(d.dir)
		}
	}
	c.w.Uint32(uint32(st))
	from.wcc.write(c.w)
	to.wcc.write(c.w)
	return st
}
