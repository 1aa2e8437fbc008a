package nfs3

import (
	"github.com/rwxnfs/rwxnfs/pkg/nfs3/wire"
	"github.com/rwxnfs/rwxnfs/pkg/vfs"
)

// statuses maps the layer's errors to nfsstat3: the one place an NFS
// status is chosen for a failure.
var statuses = [...]wire.Status{
	vfs.ErrPerm:        wire.ErrPerm,
	vfs.ErrNoEnt:       wire.ErrNoEnt,
	vfs.ErrIO:          wire.ErrIO,
	vfs.ErrAccess:      wire.ErrAccess,
	vfs.ErrExist:       wire.ErrExist,
	vfs.ErrXDev:        wire.ErrXDev,
	vfs.ErrNotDir:      wire.ErrNotDir,
	vfs.ErrIsDir:       wire.ErrIsDir,
	vfs.ErrInval:       wire.ErrInval,
	vfs.ErrFBig:        wire.ErrFBig,
	vfs.ErrNoSpace:     wire.ErrNoSpc,
	vfs.ErrROFS:        wire.ErrROFS,
	vfs.ErrMLink:       wire.ErrMLink,
	vfs.ErrNameTooLong: wire.ErrNameTooLong,
	vfs.ErrNotEmpty:    wire.ErrNotEmpty,
	vfs.ErrDQuot:       wire.ErrDQuot,
	vfs.ErrStale:       wire.ErrStale,
	vfs.ErrBadHandle:   wire.ErrBadHandle,
	vfs.ErrNotSync:     wire.ErrNotSync,
	vfs.ErrBadCookie:   wire.ErrBadCookie,
	vfs.ErrNotSupp:     wire.ErrNotSupp,
	vfs.ErrBadType:     wire.ErrBadType,
	vfs.ErrFault:       wire.ErrServerFault,
}

// status is the nfsstat3 of an operation's error.
func status(err error) wire.Status {
	if err == nil {
		return wire.OK
	}
	if e := vfs.Code(err); int(e) < len(statuses) && statuses[e] != 0 {
		return statuses[e]
	}
	return wire.ErrServerFault
}

// mountStatus is the mountstat3 of a failed MNT.
func mountStatus(err error) wire.MountStatus {
	switch vfs.Code(err) {
	case vfs.ErrAccess:
		return wire.MountErrAccess
	case vfs.ErrNotDir:
		return wire.MountErrNotDir
	}
	return wire.MountErrNoEnt
}
