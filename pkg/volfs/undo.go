package volfs

import (
	"golang.org/x/sys/unix"
)

// undoCreate removes what a create call just made when applying the
// call's attributes to it failed (a size past the quota, an owner the
// caller may not give): the call fails, so it must leave no object, and
// no charge, behind; else the client, told the create failed, would find
// the name taken (a GUARDED retry fails EXIST) and the volume charged for
// it. It runs as the server, not the caller: a half-applied chown may
// have left the caller unable to remove it. flags is 0 or
// unix.AT_REMOVEDIR.
func (fs *FS) undoCreate(d *dirop, name string, flags int) {
	victim, err := unlinkCharged(d.dir, name, func() []byte {
		h, _ := fs.t.HandleAt(d.dir.Vol, d.dir.FD(), name)
		return h
	}, func() error { return unix.Unlinkat(d.dir.FD(), name, flags) })
	if err != nil {
		fs.log.Warn("could not remove what a failed create made", "volume", d.dir.Vol.ID, "name", name, "err", err)
		return
	}
	if victim != nil {
		fs.t.Forget(victim)
	}
}
