package nfs3

import (
	"golang.org/x/sys/unix"

	"github.com/rwxnfs/rwxnfs/pkg/fscred"
)

// REMOVE: unlink a non-directory, as the caller (the kernel applies the
// directory's write permission and sticky bit).
func (c *call) remove() Status { return c.unlink(0) }

// RMDIR: remove an empty directory, as the caller.
func (c *call) rmdir() Status { return c.unlink(unix.AT_REMOVEDIR) }

func (c *call) unlink(flags int) Status {
	fh := readHandle(c.r)
	name := c.r.String(maxPath)
	if !c.args() {
		return OK
	}
	d, st := c.beginDirop(fh, name)
	if st == errExist {
		// "." and ".." are never removed through NFS.
		if flags != 0 && name == ".." {
			st = errNotEmpty
		} else {
			st = errInval
		}
	}
	if st != OK {
		return d.fail(st)
	}
	var victim []byte
	err := fscred.Do(c.cred(d.dir.Vol), func() error {
		victim, _ = c.h.Table.HandleAt(d.dir.Vol, d.dir.FD(), name)
		return unlinkCharged(d.dir, name, victim, func() error { return unix.Unlinkat(d.dir.FD(), name, flags) })
	})
	if err == nil && victim != nil {
		// Close our descriptors of it so its space is freed now.
		c.h.Table.Forget(victim)
	}
	if st := d.finish(err); st != OK {
		return d.fail(st)
	}
	c.w.Uint32(uint32(OK))
	d.wcc.write(c.w)
	return OK
}
