package nfs3

import (
	"encoding/binary"
	"errors"

	"golang.org/x/sys/unix"

	"github.com/rwxnfs/rwxnfs/pkg/fscred"
)

// createhow3 modes.
const (
	createUnchecked = 0
	createGuarded   = 1
	createExclusive = 2
)

// CREATE: a regular file, run as the caller so the kernel checks the
// directory's permissions and makes the caller the owner.
func (c *call) create() Status {
	fh := readHandle(c.r)
	name := c.r.String(maxPath)
	how := c.r.Uint32()
	var sa sattr
	var verf []byte
	switch how {
	case createUnchecked, createGuarded:
		sa = readSattr(c.r)
	case createExclusive:
		verf = c.r.FixedOpaque(8)
	default:
		c.r.Fail(errBadTime)
	}
	if !c.args() {
		return OK
	}
	d, st := c.beginDirop(fh, name)
	if st != OK {
		return d.fail(st)
	}
	cred := c.cred(d.dir.Vol)
	mode := uint32(0o644)
	if sa.setMode {
		mode = sa.mode
	}
	err := createCharged(d.dir, name, 0, cred, func() error {
		fd, err := unix.Openat(d.dir.FD(), name, unix.O_CREAT|unix.O_EXCL|unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode)
		if err == nil {
			defer unix.Close(fd)
			if verf != nil {
				return setVerifier(fd, verf)
			}
			return nil
		}
		if !errors.Is(err, unix.EEXIST) || how == createGuarded {
			return err
		}
		var st unix.Stat_t
		if err := unix.Fstatat(d.dir.FD(), name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		if !isReg(&st) {
			return unix.EEXIST
		}
		if verf != nil {
			// A retransmitted exclusive create finds its own verifier.
			if !hasVerifier(&st, verf) {
				return unix.EEXIST
			}
			return nil
		}
		return errUnchecked
	})
	switch {
	case errors.Is(err, errUnchecked):
		// UNCHECKED on an existing file: only the size applies (O_TRUNC).
		err = nil
		if sa.setSize {
			err = c.setAttrsByName(d, name, sattr{setSize: true, size: sa.size}, cred)
		}
	case err == nil && verf == nil && (sa.setUID || sa.setGID || sa.setSize || sa.atime.how != dontChange || sa.mtime.how != dontChange):
		sa.setMode = false
		err = c.setAttrsByName(d, name, sa, cred)
	}
	if st := d.finish(err); st != OK {
		return d.fail(st)
	}
	return d.created(name)
}

var errUnchecked = errors.New("exists (unchecked create)")

// setVerifier stores an exclusive create's verifier in the new file's
// atime and mtime, where a retransmission can find it; the client sets
// the real times with a SETATTR straight after.
func setVerifier(fd int, verf []byte) error {
	ts := []unix.Timespec{
		{Sec: int64(binary.BigEndian.Uint32(verf[0:4]))},
		{Sec: int64(binary.BigEndian.Uint32(verf[4:8]))},
	}
	return unix.UtimesNanoAt(unix.AT_FDCWD, procPath(fd), ts, 0)
}

func hasVerifier(st *unix.Stat_t, verf []byte) bool {
	return st.Atim.Sec == int64(binary.BigEndian.Uint32(verf[0:4])) && st.Atim.Nsec == 0 &&
		st.Mtim.Sec == int64(binary.BigEndian.Uint32(verf[4:8])) && st.Mtim.Nsec == 0
}

// setAttrsByName applies attributes to a just-created entry.
func (c *call) setAttrsByName(d *dirop, name string, sa sattr, cred fscred.Cred) error {
	h, err := c.h.Table.HandleAt(d.dir.Vol, d.dir.FD(), name)
	if err != nil {
		return err
	}
	n, err := c.h.Table.Resolve(h)
	if err != nil {
		return err
	}
	defer c.h.Table.Release(n)
	var st unix.Stat_t
	if err := n.Stat(&st); err != nil {
		return err
	}
	return setAttrs(n, &st, sa, cred)
}

// MKDIR: a directory, as the caller.
func (c *call) mkdir() Status {
	fh := readHandle(c.r)
	name := c.r.String(maxPath)
	sa := readSattr(c.r)
	if !c.args() {
		return OK
	}
	d, st := c.beginDirop(fh, name)
	if st != OK {
		return d.fail(st)
	}
	mode := uint32(0o755)
	if sa.setMode {
		mode = sa.mode
	}
	cred := c.cred(d.dir.Vol)
	err := createCharged(d.dir, name, 0, cred, func() error { return unix.Mkdirat(d.dir.FD(), name, mode) })
	if err == nil {
		err = c.applyCreateAttrs(d, name, sa, cred)
	}
	if st := d.finish(err); st != OK {
		return d.fail(st)
	}
	return d.created(name)
}

// applyCreateAttrs applies what of sattr the create call itself did not.
func (c *call) applyCreateAttrs(d *dirop, name string, sa sattr, cred fscred.Cred) error {
	sa.setMode = false
	if !sa.setUID && !sa.setGID && !sa.setSize && sa.atime.how == dontChange && sa.mtime.how == dontChange {
		return nil
	}
	return c.setAttrsByName(d, name, sa, cred)
}

// SYMLINK: a symbolic link holding any text up to maxPath; the server
// stores it and never follows it.
func (c *call) symlink() Status {
	fh := readHandle(c.r)
	name := c.r.String(maxPath)
	sa := readSattr(c.r)
	target := c.r.String(maxPath)
	if !c.args() {
		return OK
	}
	d, st := c.beginDirop(fh, name)
	if st != OK {
		return d.fail(st)
	}
	if target == "" || containsNul(target) {
		return d.fail(errInval)
	}
	cred := c.cred(d.dir.Vol)
	err := createCharged(d.dir, name, int64(len(target)), cred, func() error { return unix.Symlinkat(target, d.dir.FD(), name) })
	if err == nil && (sa.setUID || sa.setGID) {
		err = c.setAttrsByName(d, name, sattr{setUID: sa.setUID, uid: sa.uid, setGID: sa.setGID, gid: sa.gid}, cred)
	}
	if st := d.finish(err); st != OK {
		return d.fail(st)
	}
	return d.created(name)
}

func containsNul(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return true
		}
	}
	return false
}

// MKNOD: FIFOs and sockets for anyone; device nodes only for root (the
// kernel would let the server's CAP_MKNOD create them for any caller).
func (c *call) mknod() Status {
	fh := readHandle(c.r)
	name := c.r.String(maxPath)
	ftyp := c.r.Uint32()
	var sa sattr
	var major, minor uint32
	switch ftyp {
	case typeChr, typeBlk:
		sa = readSattr(c.r)
		major, minor = c.r.Uint32(), c.r.Uint32()
	case typeSock, typeFifo:
		sa = readSattr(c.r)
	}
	if !c.args() {
		return OK
	}
	d, st := c.beginDirop(fh, name)
	if st != OK {
		return d.fail(st)
	}
	cred := c.cred(d.dir.Vol)
	var kind uint32
	switch ftyp {
	case typeChr:
		kind = unix.S_IFCHR
	case typeBlk:
		kind = unix.S_IFBLK
	case typeSock:
		kind = unix.S_IFSOCK
	case typeFifo:
		kind = unix.S_IFIFO
	default:
		return d.fail(errBadType)
	}
	if (ftyp == typeChr || ftyp == typeBlk) && cred.UID != 0 {
		return d.fail(errPerm)
	}
	mode := uint32(0o644)
	if sa.setMode {
		mode = sa.mode
	}
	err := createCharged(d.dir, name, 0, cred, func() error {
		return unix.Mknodat(d.dir.FD(), name, kind|mode, int(unix.Mkdev(major, minor)))
	})
	if err == nil {
		err = c.applyCreateAttrs(d, name, sa, cred)
	}
	if st := d.finish(err); st != OK {
		return d.fail(st)
	}
	return d.created(name)
}
