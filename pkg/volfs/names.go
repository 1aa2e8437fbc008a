package volfs

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/rwxnfs/rwxnfs/pkg/exports"
	"github.com/rwxnfs/rwxnfs/pkg/fscred"
	"github.com/rwxnfs/rwxnfs/pkg/vfs"
)

// Names. Clients name files only by handle plus single-component names;
// the server never resolves a path for a client, never follows a symlink
// (every *at call uses AT_SYMLINK_NOFOLLOW or O_NOFOLLOW), and never
// creates or removes "." or "..". ".." at a volume's root is the root.

// Lookup implements vfs.FS.
func (fs *FS) Lookup(_ context.Context, c vfs.Caller, dirFH []byte, name string) (vfs.LookupResult, error) {
	var res vfs.LookupResult
	var dst unix.Stat_t
	dir, err := fs.node(&c, dirFH, &dst, "LOOKUP")
	if err != nil {
		return res, err
	}
	defer fs.t.Release(dir)
	res.Dir, res.HasDir = attrOf(&dst, dir.Vol.FSID), true
	switch {
	case !isDir(&dst):
		return res, vfs.ErrNotDir
	case len(name) > vfs.MaxName:
		return res, vfs.ErrNameTooLong
	case name == "" || strings.ContainsAny(name, "/\x00"):
		return res, vfs.ErrNoEnt
	}
	id := cred(&c, dir)
	if name == "." || name == ".." && dir.IsRoot() {
		if permits(&dst, id, false)&vfs.AccessLookup == 0 {
			return res, vfs.ErrAccess
		}
		res.FH, res.Attr = dir.Handle, res.Dir
		return res, nil
	}
	var st unix.Stat_t
	err = fscred.Do(id, func() error {
		if err := unix.Fstatat(dir.FD(), name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		var err error
		res.FH, err = fs.t.HandleAt(dir.Vol, dir.FD(), name)
		return err
	})
	if err != nil {
		return res, fs.fail("LOOKUP", err)
	}
	res.Attr = attrOf(&st, dir.Vol.FSID)
	return res, nil
}

// dirop is a change to one directory's entries: the directory, the
// identity the change runs as, and the directory's wcc data.
type dirop struct {
	dir *exports.Node
	id  fscred.Cred
	wcc vfs.Wcc
}

// beginDirop resolves the directory of a namespace change, records its
// attributes before the change, and checks what every such change needs:
// a directory, a writable volume, a valid single-component name ("." and
// ".." are ErrExist). The caller releases d.dir (nil is fine).
func (fs *FS) beginDirop(c *vfs.Caller, fh []byte, name, op string) (d dirop, err error) {
	d.dir, err = fs.resolve(c, fh, op)
	if err != nil {
		return d, err
	}
	d.id = cred(c, d.dir)
	var pre unix.Stat_t
	if err := fs.stat(d.dir, &pre, op); err != nil {
		after(&d.wcc, d.dir)
		return d, err
	}
	before(&d.wcc, &pre)
	switch {
	case !isDir(&pre):
		err = vfs.ErrNotDir
	case d.dir.Vol.Options.ReadOnly:
		err = vfs.ErrROFS
	default:
		err = checkName(name)
	}
	if err != nil {
		after(&d.wcc, d.dir)
	}
	return d, err
}

// checkName validates a name to create or remove in a directory.
func checkName(name string) error {
	switch {
	case name == "" || strings.ContainsAny(name, "/\x00"):
		return vfs.ErrAccess
	case len(name) > vfs.MaxName:
		return vfs.ErrNameTooLong
	case name == "." || name == "..":
		return vfs.ErrExist
	}
	return nil
}

// finish makes a successful change durable and records the directory's
// attributes after it.
func (fs *FS) finish(d *dirop, op string, err error) error {
	if err == nil {
		err = fs.commitDir(d.dir, nil)
	}
	after(&d.wcc, d.dir)
	return fs.fail(op, err)
}

// created describes what a create made, as the server (the caller may
// lack search permission to look it up, yet must get its handle).
func (fs *FS) created(d *dirop, name string) vfs.Created {
	res := vfs.Created{Dir: d.wcc}
	var st unix.Stat_t
	if unix.Fstatat(d.dir.FD(), name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
		return res // made; the client can LOOKUP it
	}
	h, err := fs.t.HandleAt(d.dir.Vol, d.dir.FD(), name)
	if err != nil {
		return res
	}
	res.FH, res.Attr, res.Found = h, attrOf(&st, d.dir.Vol.FSID), true
	return res
}

// Create implements vfs.FS: a regular file, made as the caller so the
// kernel checks the directory's permissions and makes the caller the
// owner.
func (fs *FS) Create(_ context.Context, c vfs.Caller, dirFH []byte, name string, how vfs.CreateArgs) (vfs.Created, error) {
	d, err := fs.beginDirop(&c, dirFH, name, "CREATE")
	defer fs.t.Release(d.dir)
	if err != nil {
		return vfs.Created{Dir: d.wcc}, err
	}
	sa := how.Attr
	mode := uint32(0o644)
	if sa.SetMode {
		mode = nonDirMode(d.dir.Vol, sa.Mode)
	}
	exclusive := how.Mode == vfs.Exclusive
	err = createCharged(d.dir, name, 0, d.id, func() (bool, error) {
		fd, err := unix.Openat(d.dir.FD(), name, unix.O_CREAT|unix.O_EXCL|unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode)
		if err == nil {
			defer unix.Close(fd)
			if exclusive {
				return true, setVerifier(fd, how.Verf)
			}
			return true, nil
		}
		if !errors.Is(err, unix.EEXIST) || how.Mode == vfs.Guarded {
			return false, err
		}
		var st unix.Stat_t
		if err := unix.Fstatat(d.dir.FD(), name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return false, err
		}
		if !isReg(&st) {
			return false, unix.EEXIST
		}
		if exclusive {
			// A retransmitted exclusive create finds its own verifier.
			if !hasVerifier(&st, how.Verf) {
				return false, unix.EEXIST
			}
			return false, nil
		}
		return false, errUnchecked
	})
	switch {
	case errors.Is(err, errUnchecked):
		// UNCHECKED on an existing file: only the size applies (O_TRUNC).
		err = nil
		if sa.SetSize {
			err = fs.setAttrsByName(&d, name, vfs.SetAttr{SetSize: true, Size: sa.Size})
		}
	case err == nil && !exclusive:
		if err = fs.applyCreateAttrs(&d, name, sa); err != nil {
			fs.undoCreate(&d, name, 0)
		}
	}
	if err := fs.finish(&d, "CREATE", err); err != nil {
		return vfs.Created{Dir: d.wcc}, err
	}
	return fs.created(&d, name), nil
}

var errUnchecked = errors.New("exists (unchecked create)")

// made is the result of a system call that makes an inode when it
// succeeds (mkdirat, symlinkat, mknodat).
func made(err error) (bool, error) { return err == nil, err }

// setVerifier stores an exclusive create's verifier in the new file's
// atime and mtime, where a retransmission can find it; the client sets
// the real times with a SETATTR straight after.
func setVerifier(fd int, verf [8]byte) error {
	ts := []unix.Timespec{
		{Sec: int64(binary.BigEndian.Uint32(verf[0:4]))},
		{Sec: int64(binary.BigEndian.Uint32(verf[4:8]))},
	}
	return utimesFD(fd, ts)
}

func hasVerifier(st *unix.Stat_t, verf [8]byte) bool {
	return st.Atim.Sec == int64(binary.BigEndian.Uint32(verf[0:4])) && st.Atim.Nsec == 0 &&
		st.Mtim.Sec == int64(binary.BigEndian.Uint32(verf[4:8])) && st.Mtim.Nsec == 0
}

// applyCreateAttrs applies what of sa the create call itself did not (it
// set the mode).
func (fs *FS) applyCreateAttrs(d *dirop, name string, sa vfs.SetAttr) error {
	sa.SetMode = false
	if sa.Empty() {
		return nil
	}
	return fs.setAttrsByName(d, name, sa)
}

// setAttrsByName applies attributes to a just-created entry.
func (fs *FS) setAttrsByName(d *dirop, name string, sa vfs.SetAttr) error {
	h, err := fs.t.HandleAt(d.dir.Vol, d.dir.FD(), name)
	if err != nil {
		return err
	}
	n, err := fs.t.Resolve(h)
	if err != nil {
		return err
	}
	defer fs.t.Release(n)
	var st unix.Stat_t
	if err := n.Stat(&st); err != nil {
		return err
	}
	return setAttrs(n, &st, sa, d.id)
}

// Mkdir implements vfs.FS: a directory, as the caller.
func (fs *FS) Mkdir(_ context.Context, c vfs.Caller, dirFH []byte, name string, sa vfs.SetAttr) (vfs.Created, error) {
	d, err := fs.beginDirop(&c, dirFH, name, "MKDIR")
	defer fs.t.Release(d.dir)
	if err != nil {
		return vfs.Created{Dir: d.wcc}, err
	}
	mode := uint32(0o755)
	if sa.SetMode {
		mode = sa.Mode
	}
	err = createCharged(d.dir, name, 0, d.id, func() (bool, error) { return made(unix.Mkdirat(d.dir.FD(), name, mode)) })
	if err == nil {
		if err = fs.applyCreateAttrs(&d, name, sa); err != nil {
			fs.undoCreate(&d, name, unix.AT_REMOVEDIR)
		}
	}
	if err := fs.finish(&d, "MKDIR", err); err != nil {
		return vfs.Created{Dir: d.wcc}, err
	}
	return fs.created(&d, name), nil
}

// Symlink implements vfs.FS: a symbolic link holding any text up to
// MaxPath; the server stores it and never follows it.
func (fs *FS) Symlink(_ context.Context, c vfs.Caller, dirFH []byte, name, target string, sa vfs.SetAttr) (vfs.Created, error) {
	d, err := fs.beginDirop(&c, dirFH, name, "SYMLINK")
	defer fs.t.Release(d.dir)
	if err == nil && (target == "" || len(target) > vfs.MaxPath || strings.IndexByte(target, 0) >= 0) {
		err = vfs.ErrInval
		after(&d.wcc, d.dir)
	}
	if err != nil {
		return vfs.Created{Dir: d.wcc}, err
	}
	err = createCharged(d.dir, name, int64(len(target)), d.id, func() (bool, error) { return made(unix.Symlinkat(target, d.dir.FD(), name)) })
	if err == nil && (sa.SetUID || sa.SetGID) {
		if err = fs.setAttrsByName(&d, name, vfs.SetAttr{SetUID: sa.SetUID, UID: sa.UID, SetGID: sa.SetGID, GID: sa.GID}); err != nil {
			fs.undoCreate(&d, name, 0)
		}
	}
	if err := fs.finish(&d, "SYMLINK", err); err != nil {
		return vfs.Created{Dir: d.wcc}, err
	}
	return fs.created(&d, name), nil
}

// Mknod implements vfs.FS: FIFOs and sockets for anyone; device nodes
// only where the volume allows them, for root (special.go).
func (fs *FS) Mknod(_ context.Context, c vfs.Caller, dirFH []byte, name string, t vfs.FileType, sa vfs.SetAttr, major, minor uint32) (vfs.Created, error) {
	d, err := fs.beginDirop(&c, dirFH, name, "MKNOD")
	defer fs.t.Release(d.dir)
	var kind uint32
	if err == nil {
		switch t {
		case vfs.TypeChr:
			kind = unix.S_IFCHR
		case vfs.TypeBlk:
			kind = unix.S_IFBLK
		case vfs.TypeSock:
			kind = unix.S_IFSOCK
		case vfs.TypeFifo:
			kind = unix.S_IFIFO
		default:
			err = vfs.ErrBadType
		}
		if err == nil && (t == vfs.TypeChr || t == vfs.TypeBlk) {
			err = mayMakeDevice(d.dir.Vol, d.id.UID)
		}
		if err != nil {
			after(&d.wcc, d.dir)
		}
	}
	if err != nil {
		return vfs.Created{Dir: d.wcc}, err
	}
	mode := uint32(0o644)
	if sa.SetMode {
		mode = nonDirMode(d.dir.Vol, sa.Mode)
	}
	err = createCharged(d.dir, name, 0, d.id, func() (bool, error) {
		return made(unix.Mknodat(d.dir.FD(), name, kind|mode, int(unix.Mkdev(major, minor))))
	})
	if err == nil {
		if err = fs.applyCreateAttrs(&d, name, sa); err != nil {
			fs.undoCreate(&d, name, 0)
		}
	}
	if err := fs.finish(&d, "MKNOD", err); err != nil {
		return vfs.Created{Dir: d.wcc}, err
	}
	return fs.created(&d, name), nil
}

// Remove implements vfs.FS: unlink a non-directory, as the caller (the
// kernel applies the directory's write permission and sticky bit).
func (fs *FS) Remove(_ context.Context, c vfs.Caller, dirFH []byte, name string) (vfs.Wcc, error) {
	return fs.unlink(&c, dirFH, name, 0, "REMOVE")
}

// Rmdir implements vfs.FS: remove an empty directory, as the caller.
func (fs *FS) Rmdir(_ context.Context, c vfs.Caller, dirFH []byte, name string) (vfs.Wcc, error) {
	return fs.unlink(&c, dirFH, name, unix.AT_REMOVEDIR, "RMDIR")
}

func (fs *FS) unlink(c *vfs.Caller, dirFH []byte, name string, flags int, op string) (vfs.Wcc, error) {
	d, err := fs.beginDirop(c, dirFH, name, op)
	defer fs.t.Release(d.dir)
	if err == vfs.ErrExist {
		// "." and ".." are never removed.
		if flags != 0 && name == ".." {
			err = vfs.ErrNotEmpty
		} else {
			err = vfs.ErrInval
		}
	}
	if err != nil {
		return d.wcc, err
	}
	var victim []byte
	err = fscred.Do(d.id, func() error {
		var err error
		victim, err = unlinkCharged(d.dir, name, func() []byte {
			h, _ := fs.t.HandleAt(d.dir.Vol, d.dir.FD(), name)
			return h
		}, func() error { return unix.Unlinkat(d.dir.FD(), name, flags) })
		return err
	})
	if err == nil && victim != nil {
		// Close our descriptors of it so its space is freed now.
		fs.t.Forget(victim)
	}
	err = fs.finish(&d, op, err)
	return d.wcc, err
}

// Rename implements vfs.FS: move an entry within a volume, as the caller.
// Handles name inodes, not paths, so every handle of the moved entry and
// of anything under it stays valid.
func (fs *FS) Rename(_ context.Context, c vfs.Caller, fromFH []byte, fromName string, toFH []byte, toName string) (vfs.RenameResult, error) {
	from, err := fs.beginDirop(&c, fromFH, fromName, "RENAME")
	defer fs.t.Release(from.dir)
	var to dirop
	if err == nil {
		to, err = fs.beginDirop(&c, toFH, toName, "RENAME")
		defer fs.t.Release(to.dir)
	}
	if err == nil && from.dir.Vol != to.dir.Vol {
		err = vfs.ErrXDev
	}
	if err == vfs.ErrExist {
		err = vfs.ErrInval // renaming "." or ".."
	}
	if err != nil {
		after(&from.wcc, from.dir)
		after(&to.wcc, to.dir)
		return vfs.RenameResult{From: from.wcc, To: to.wcc}, err
	}
	var victim []byte
	err = fscred.Do(from.id, func() error {
		var err error
		victim, err = renameCharged(from.dir, fromName, to.dir, toName, func() []byte {
			h, _ := fs.t.HandleAt(to.dir.Vol, to.dir.FD(), toName)
			return h
		}, func() error { return unix.Renameat(from.dir.FD(), fromName, to.dir.FD(), toName) })
		return err
	})
	if err == nil && victim != nil {
		fs.t.Forget(victim)
	}
	if err == nil {
		err = fs.commitDir(from.dir, to.dir)
	}
	after(&from.wcc, from.dir)
	after(&to.wcc, to.dir)
	return vfs.RenameResult{From: from.wcc, To: to.wcc}, fs.fail("RENAME", err)
}

// Link implements vfs.FS: a hard link to a file in the same volume, as
// the caller. The link is made through /proc because linkat with
// AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH, which the caller's identity
// does not carry.
func (fs *FS) Link(_ context.Context, c vfs.Caller, fileFH, dirFH []byte, name string) (vfs.LinkResult, error) {
	var res vfs.LinkResult
	file, err := fs.resolve(&c, fileFH, "LINK")
	if err != nil {
		return res, err
	}
	defer fs.t.Release(file)
	var st unix.Stat_t
	fileStat := func() {
		if file.Stat(&st) == nil {
			res.File = vfs.AttrResult{Attr: attrOf(&st, file.Vol.FSID), HasAttr: true}
		}
	}
	fileStat()
	d, err := fs.beginDirop(&c, dirFH, name, "LINK")
	defer fs.t.Release(d.dir)
	switch {
	case err != nil:
	case file.Vol != d.dir.Vol:
		err = vfs.ErrXDev
	case res.File.HasAttr && res.File.Attr.Type == vfs.TypeDir:
		err = vfs.ErrIsDir
	default:
		err = linkAllowed(d.dir.Vol)
	}
	if err == nil {
		err = fscred.Do(d.id, func() error {
			return unix.Linkat(unix.AT_FDCWD, procPath(file.FD()), d.dir.FD(), name, unix.AT_SYMLINK_FOLLOW)
		})
		err = fs.finish(&d, "LINK", err)
		res.File = vfs.AttrResult{}
		fileStat()
	}
	after(&d.wcc, d.dir)
	res.Dir = d.wcc
	return res, err
}
