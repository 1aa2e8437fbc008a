package volfs

import (
	"golang.org/x/sys/unix"

	"github.com/rwxnfs/rwxnfs/pkg/exports"
	"github.com/rwxnfs/rwxnfs/pkg/fscred"
	"github.com/rwxnfs/rwxnfs/pkg/quota"
	"github.com/rwxnfs/rwxnfs/pkg/vfs"
)

// Quota enforcement (see pkg/quota for the unit and the exactness
// argument). Each operation that changes usage wraps its system call in
// one of the functions below, which, under the lock of the inode whose
// size changes, measure the state before, reserve the growth (refusing
// with EDQUOT before anything changed), run the change, and charge what
// really changed. Operations that make, remove or replace a name also
// hold that name's lock (quota.Volume.LockNames), taken before any inode
// lock: whether an inode was made is the system call's own answer, and
// the entry a creator finds after its call is the one it made.

// quotaWrite wraps a WRITE's pwrite of n bytes at off on fd.
func quotaWrite(node *exports.Node, fd int, off uint64, n int, put func() error) func() error {
	q := node.Vol.Quota
	if q == nil {
		return put
	}
	return func() error {
		unlock := q.Lock(node.Handle)
		defer unlock()
		var pre unix.Stat_t
		if err := unix.Fstat(fd, &pre); err != nil {
			return err
		}
		if pre.Nlink == 0 {
			return exports.ErrStale // removed while we waited for the lock
		}
		q.Touch(pre.Ino, pre.Size, nil)
		growth := int64(off) + int64(n) - pre.Size
		if growth < 0 {
			growth = 0
		}
		if err := q.Reserve(growth, 0); err != nil {
			return unix.EDQUOT
		}
		err := put()
		if err != nil {
			// Partly written, perhaps: charge what the size says.
			charged := int64(0)
			var post unix.Stat_t
			if unix.Fstat(fd, &post) == nil {
				charged = post.Size - pre.Size
			}
			q.Add(charged-growth, 0)
		}
		// Otherwise the file grew by exactly growth: nothing else changes
		// its size while we hold its lock.
		return err
	}
}

// truncateCharged sets a regular file's size (SETATTR, CREATE with a
// size): growth is reserved, shrinking frees at once.
func truncateCharged(node *exports.Node, fd int, size int64) error {
	q := node.Vol.Quota
	if q == nil {
		return unix.Ftruncate(fd, size)
	}
	unlock := q.Lock(node.Handle)
	defer unlock()
	var pre unix.Stat_t
	if err := unix.Fstat(fd, &pre); err != nil {
		return err
	}
	q.Touch(pre.Ino, pre.Size, nil)
	delta := size - pre.Size
	if err := q.Reserve(delta, 0); err != nil {
		return unix.EDQUOT
	}
	err := unix.Ftruncate(fd, size)
	if err != nil {
		q.Add(-delta, 0)
	}
	return err
}

// createCharged makes name in dir as id (CREATE, MKDIR, SYMLINK, MKNOD).
// do runs the system call and reports whether it made a new inode; that
// comes from the call's own result (O_EXCL or mkdirat succeeding), never
// from a look beforehand, which another client could make stale. One
// inode and bytes (a symlink's text) are reserved first and kept only if
// do made one. The name's lock is held throughout, and every operation
// that removes or replaces a name takes it too, so the entry found after
// the call is the one it made.
func createCharged(dir *exports.Node, name string, bytes int64, id fscred.Cred, do func() (made bool, err error)) error {
	mk := func() (made bool, err error) {
		err = fscred.Do(id, func() error {
			var err error
			made, err = do()
			return err
		})
		return made, err
	}
	q := dir.Vol.Quota
	if q == nil {
		_, err := mk()
		return err
	}
	unlock := q.LockNames(quota.Name{Dir: dir.Handle, Name: name})
	defer unlock()
	reserved := q.Reserve(bytes, 1) == nil
	if !reserved && !exists(dir, name) {
		return unix.EDQUOT
	}
	// Over a limit but the name exists: the call can only find it (an
	// UNCHECKED or retransmitted EXCLUSIVE create) or fail with EEXIST.
	made, err := mk()
	switch {
	case made && !reserved:
		q.Add(bytes, 1) // made after all: the name went away outside NFS
	case !made && reserved:
		q.Add(-bytes, -1)
	}
	if made {
		var st unix.Stat_t
		if unix.Fstatat(dir.FD(), name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
			q.Created(st.Ino)
			if c := quota.Charge(&st); c != bytes {
				q.Add(c-bytes, 0)
			}
		}
	}
	return err
}

func exists(dir *exports.Node, name string) bool {
	var st unix.Stat_t
	return unix.Fstatat(dir.FD(), name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil
}

// unlinkCharged wraps REMOVE and RMDIR of name, under the name's lock:
// victim gives the handle of what the name holds (nil if unknown), which
// the function returns; once the last link of an inode is gone, its bytes
// and inode are freed. A file with other links frees nothing.
func unlinkCharged(dir *exports.Node, name string, victim func() []byte, rm func() error) ([]byte, error) {
	q := dir.Vol.Quota
	if q == nil {
		return victim(), rm()
	}
	unlock := q.LockNames(quota.Name{Dir: dir.Handle, Name: name})
	defer unlock()
	v := victim()
	if v == nil {
		return nil, rm()
	}
	unlockInode := q.Lock(v)
	defer unlockInode()
	fd, err := unix.Openat(dir.FD(), name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return v, rm()
	}
	defer unix.Close(fd)
	var pre unix.Stat_t
	if err := unix.Fstat(fd, &pre); err != nil {
		return v, rm()
	}
	q.Touch(pre.Ino, quota.Charge(&pre), nil)
	if err := rm(); err != nil {
		return v, err
	}
	freeIfGone(q, fd)
	return v, nil
}

// freeIfGone frees the charge of the inode held by fd if no link to it
// is left.
func freeIfGone(q *quota.Volume, fd int) {
	var post unix.Stat_t
	if unix.Fstat(fd, &post) == nil && post.Nlink == 0 {
		q.Add(-quota.Charge(&post), -1)
	}
}

// renameCharged wraps RENAME, under the locks of both names: an entry it
// replaces (victim gives its handle, which the function returns) is freed
// like a REMOVE; while a reconcile walk runs, the moved entry is reported
// so the walk counts it wherever it lands.
func renameCharged(from *exports.Node, fromName string, to *exports.Node, toName string, victim func() []byte, mv func() error) ([]byte, error) {
	q := from.Vol.Quota
	if q == nil {
		return victim(), mv()
	}
	unlock := q.LockNames(quota.Name{Dir: from.Handle, Name: fromName}, quota.Name{Dir: to.Handle, Name: toName})
	defer unlock()
	var src unix.Stat_t
	if unix.Fstatat(from.FD(), fromName, &src, unix.AT_SYMLINK_NOFOLLOW) == nil {
		var key []byte
		if isDir(&src) {
			if h, err := nameHandle(from, fromName); err == nil {
				key = h
			}
		}
		q.Touch(src.Ino, quota.Charge(&src), key)
	}
	v := victim()
	if v == nil {
		return nil, mv()
	}
	unlockInode := q.Lock(v)
	defer unlockInode()
	fd, err := unix.Openat(to.FD(), toName, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return v, mv()
	}
	defer unix.Close(fd)
	var pre unix.Stat_t
	if err := unix.Fstat(fd, &pre); err != nil || pre.Ino == src.Ino {
		return v, mv() // renaming a link onto another link of itself: a no-op
	}
	q.Touch(pre.Ino, quota.Charge(&pre), nil)
	if err := mv(); err != nil {
		return v, err
	}
	freeIfGone(q, fd)
	return v, nil
}

// nameHandle is the raw kernel handle of a directory entry; the walk
// reopens moved directories from it.
func nameHandle(dir *exports.Node, name string) ([]byte, error) {
	fh, _, err := unix.NameToHandleAt(dir.FD(), name, 0)
	if err != nil {
		return nil, err
	}
	return exports.EncodeKernelHandle(fh), nil
}

// linkAllowed: a hard link adds a name, not bytes or an inode (usage
// counts inodes once), so it is refused only on a volume already over a
// limit, where no call may add anything.
func linkAllowed(v *exports.Volume) error {
	if v.Quota != nil && v.Quota.Over() {
		return vfs.ErrDQuot
	}
	return nil
}

// quotaFSStat replaces the backing file system's figures by the volume's
// limits for a volume that has them, so df on a client shows the PVC
// size. Free space never exceeds what the backing file system has.
func quotaFSStat(v *exports.Volume, tbytes, fbytes, abytes, tfiles, ffiles, afiles *uint64) {
	if v == nil || v.Quota == nil {
		return
	}
	lim, used := v.Quota.Limits(), v.Quota.Usage()
	if lim.Bytes > 0 {
		left := uint64(max(0, lim.Bytes-used.Bytes))
		*tbytes = uint64(lim.Bytes)
		*fbytes = min(*fbytes, left)
		*abytes = min(*abytes, left)
	}
	if lim.Inodes > 0 {
		left := uint64(max(0, lim.Inodes-used.Inodes))
		*tfiles = uint64(lim.Inodes)
		*ffiles = min(*ffiles, left)
		*afiles = min(*afiles, left)
	}
}
