// Package fscred runs file-system calls as an NFS caller: with the caller's
// uid, gid and groups as the thread's file-system credentials, so that the
// kernel itself decides permissions (mode bits, sticky directories) and sets
// the owner and group of what is created, exactly as for a local process.
package fscred

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// Cred is the identity a call runs as.
type Cred struct {
	UID, GID uint32
	Groups   []uint32
}

// Root is the server's own identity.
var Root = Cred{}

// IsRoot reports whether c is uid 0 with gid 0: the server's own identity,
// which needs no switch (supplementary groups add nothing to root's rights).
func (c Cred) IsRoot() bool { return c.UID == 0 && c.GID == 0 }

// InGroup reports whether gid is c's primary or a supplementary group.
func (c Cred) InGroup(gid uint32) bool {
	if c.GID == gid {
		return true
	}
	for _, g := range c.Groups {
		if g == gid {
			return true
		}
	}
	return false
}

// Do runs fn with the thread's fsuid, fsgid and supplementary groups set to
// c. Linux keeps these per thread, so fn runs on a locked OS thread, and
// the thread's own credentials are restored before it is released. If they
// cannot be restored the thread is left locked, which makes the runtime
// retire it when this goroutine ends, so no other goroutine ever runs
// with a caller's identity.
//
// While fsuid is not 0 the kernel drops CAP_DAC_OVERRIDE, CAP_CHOWN,
// CAP_FOWNER and CAP_DAC_READ_SEARCH from the effective set; that is what
// makes the checks honest, and also why handles must be opened (which
// needs CAP_DAC_READ_SEARCH) before calling Do.
func Do(c Cred, fn func() error) error {
	if c.IsRoot() {
		return fn()
	}
	runtime.LockOSThread()
	groups := make([]int, len(c.Groups))
	for i, g := range c.Groups {
		groups[i] = int(g)
	}
	if err := unix.Setgroups(groups); err != nil {
		restore()
		runtime.UnlockOSThread()
		return fmt.Errorf("setgroups: %w", err)
	}
	unix.Setfsgid(int(c.GID))
	unix.Setfsuid(int(c.UID))
	err := fn()
	if restore() {
		runtime.UnlockOSThread()
	}
	return err
}

// restore puts the thread back to the server's credentials and reports
// whether that worked.
func restore() bool {
	unix.Setfsuid(0)
	unix.Setfsgid(0)
	if err := unix.Setgroups(nil); err != nil {
		return false
	}
	uid, _ := unix.SetfsuidRetUid(0)
	gid, _ := unix.SetfsgidRetGid(0)
	return uid == 0 && gid == 0
}
