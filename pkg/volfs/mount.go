package volfs

import (
	"context"
	"errors"

	"golang.org/x/sys/unix"

	"github.com/rwxnfs/rwxnfs/pkg/exports"
	"github.com/rwxnfs/rwxnfs/pkg/fscred"
	"github.com/rwxnfs/rwxnfs/pkg/vfs"
)

// Mount implements vfs.FS: the root handle of /volumes/<id>, or of a
// directory below it, for a client on the volume's allow-list. Refusals
// are logged with their reason.
func (fs *FS) Mount(_ context.Context, c vfs.Caller, path string) ([]byte, error) {
	v, sub, ok := fs.t.ByPath(path)
	if !ok {
		fs.log.Info("mount refused: no such volume", "client", c.Addr, "path", path)
		return nil, vfs.ErrNoEnt
	}
	if !v.Options.AllowsClient(c.Addr) {
		fs.log.Warn("mount refused: client not on the volume's allow-list", "client", c.Addr, "volume", v.ID)
		return nil, vfs.ErrAccess
	}
	if len(sub) == 0 {
		fs.log.Info("mounted", "client", c.Addr, "volume", v.ID)
		return v.Root().Handle, nil
	}
	h, err := fs.subdir(v, sub, identity(&v.Options, &c))
	if err != nil {
		fs.log.Info("mount refused: bad subdirectory", "client", c.Addr, "path", path, "err", err)
		return nil, err
	}
	fs.log.Info("mounted", "client", c.Addr, "volume", v.ID, "path", path)
	return h, nil
}

// subdir walks a subdirectory path inside a volume as the caller, one
// component at a time, never following symlinks and never accepting "."
// or "..", so a mount path cannot leave its volume.
func (fs *FS) subdir(v *exports.Volume, sub []string, id fscred.Cred) ([]byte, error) {
	var handle []byte
	root := v.Root().FD()
	err := fscred.Do(id, func() error {
		dirfd := root
		defer func() {
			if dirfd != root {
				unix.Close(dirfd)
			}
		}()
		for _, name := range sub {
			if name == "." || name == ".." || len(name) > vfs.MaxName {
				return unix.ENOENT
			}
			fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return err
			}
			if dirfd != root {
				unix.Close(dirfd)
			}
			dirfd = fd
		}
		var err error
		handle, err = fs.t.HandleAt(v, dirfd, "")
		return err
	})
	switch {
	case err == nil:
		return handle, nil
	case errors.Is(err, unix.EACCES):
		return nil, vfs.ErrAccess
	case errors.Is(err, unix.ENOTDIR), errors.Is(err, unix.ELOOP):
		return nil, vfs.ErrNotDir
	}
	return nil, vfs.ErrNoEnt
}

// Exports implements vfs.FS.
func (fs *FS) Exports() []vfs.Export {
	vols := fs.t.Volumes()
	out := make([]vfs.Export, 0, len(vols))
	for _, v := range vols {
		e := vfs.Export{Path: v.Path()}
		for _, p := range v.Options.Clients {
			e.Clients = append(e.Clients, p.String())
		}
		out = append(out, e)
	}
	return out
}
