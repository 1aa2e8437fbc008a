package volfs

import (
	"golang.org/x/sys/unix"

	"github.com/rwxnfs/rwxnfs/pkg/exports"
	"github.com/rwxnfs/rwxnfs/pkg/vfs"
)

// What a client may make that acts beyond the volume: a set-uid or
// set-gid file runs with its owner's or group's rights on every client
// that mounts without nosuid (and a root client makes root-owned ones by
// default, squash none); a device node opens a device of whoever opens
// it. Unless the volume's options allow them (exports.Options.AllowSetID,
// AllowDevices), set-id bits a client asks for on a non-directory are
// cleared, silently, as the kernel clears them on a write or chown (so
// tar, cp -a and package installs keep working, without the bits), and
// device nodes are refused with NFS3ERR_PERM, what mknod(2) gives a
// process without CAP_MKNOD. Set-gid on a directory is kept: it makes
// new entries inherit the directory's group, and shared volumes rely on
// it; set-uid on a directory means nothing on Linux.

const setIDBits = unix.S_ISUID | unix.S_ISGID

// nonDirMode is mode as a client may set it on a file, symlink or
// special file of volume v.
func nonDirMode(v *exports.Volume, mode uint32) uint32 {
	if v.Options.AllowSetID {
		return mode
	}
	return mode &^ setIDBits
}

// mayMakeDevice: a device node only on a volume that allows them, and
// then only for an unsquashed root caller (the kernel would let the
// server's CAP_MKNOD make one for anyone).
func mayMakeDevice(v *exports.Volume, uid uint32) error {
	if !v.Options.AllowDevices || uid != 0 {
		return vfs.ErrPerm
	}
	return nil
}
