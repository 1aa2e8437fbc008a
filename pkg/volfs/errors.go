package volfs

import (
	"errors"

	"golang.org/x/sys/unix"

	"github.com/rwxnfs/rwxnfs/pkg/exports"
	"github.com/rwxnfs/rwxnfs/pkg/vfs"
)

// fail turns whatever an operation met into a vfs.Error, the one
// vocabulary the protocols map. What has no place in it is logged here,
// where its cause is known.
func (fs *FS) fail(op string, err error) error {
	if err == nil {
		return nil
	}
	if e, ok := err.(vfs.Error); ok {
		return e
	}
	switch {
	case errors.Is(err, exports.ErrStale):
		return vfs.ErrStale
	case errors.Is(err, exports.ErrBadHandle):
		return vfs.ErrBadHandle
	}
	errno, ok := err.(unix.Errno) // most are, unwrapped: no allocation
	if !ok {
		errno, ok = asErrno(err)
	}
	if !ok {
		fs.log.Error("unexpected error", "op", op, "err", err)
		return vfs.ErrFault
	}
	if e := errnoError(errno); e != 0 {
		return e
	}
	fs.log.Warn("unmapped errno", "op", op, "err", err)
	return vfs.ErrIO
}

// asErrno finds an errno wrapped in err. Not inlined: its variable
// escapes (errors.As), and fail's must not.
//
//go:noinline
func asErrno(err error) (unix.Errno, bool) {
	var errno unix.Errno
	ok := errors.As(err, &errno)
	return errno, ok
}

func errnoError(errno unix.Errno) vfs.Error {
	switch errno {
	case unix.EPERM:
		return vfs.ErrPerm
	case unix.ENOENT:
		return vfs.ErrNoEnt
	case unix.EACCES:
		return vfs.ErrAccess
	case unix.EEXIST:
		return vfs.ErrExist
	case unix.EXDEV:
		return vfs.ErrXDev
	case unix.ENOTDIR:
		return vfs.ErrNotDir
	case unix.EISDIR:
		return vfs.ErrIsDir
	case unix.EINVAL, unix.ELOOP:
		return vfs.ErrInval
	case unix.EFBIG:
		return vfs.ErrFBig
	case unix.ENOSPC:
		return vfs.ErrNoSpace
	case unix.EROFS:
		return vfs.ErrROFS
	case unix.EMLINK:
		return vfs.ErrMLink
	case unix.ENAMETOOLONG:
		return vfs.ErrNameTooLong
	case unix.ENOTEMPTY:
		return vfs.ErrNotEmpty
	case unix.EDQUOT:
		return vfs.ErrDQuot
	case unix.ESTALE:
		return vfs.ErrStale
	case unix.EOPNOTSUPP:
		return vfs.ErrNotSupp
	case unix.EIO:
		return vfs.ErrIO
	}
	return 0
}
