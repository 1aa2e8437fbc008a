package exports

import (
	"errors"
	"strconv"

	"golang.org/x/sys/unix"
)

// A sealed handle is one the server minted for a file it found inside a
// volume, but the MAC is all that says so: open_by_handle_at opens any
// inode of the backing file system, wherever it lies. So a leaked handle
// key would let a client reach anything on that file system (other
// volumes, ROOT/state, the host's own files if ROOT shares their file
// system). Resolve therefore checks, each time it opens a node (a cache
// miss; a cached node was checked when it was opened), that the inode
// lies in the handle's volume:
//
//   - it is on the volume root's file system (st_dev): one fstat;
//   - a directory's ".." chain reaches the volume root, not the file
//     system root or another mount: one openat and fstat per level, a
//     few per miss in usual trees (measured: BenchmarkResolveMiss).
//
//   - a non-directory has no ".." to walk, but when the kernel knows a
//     path for it (its dentry is connected, as it is for any file looked
//     up recently), that path must lie under the volume's directory: one
//     readlink of /proc/self/fd.
//
// A forged handle of a file elsewhere on the same file system whose
// dentry the kernel has dropped (its path is then just "/") still opens:
// forging one needs the key and the file's inode generation (random 32
// bits on ext4 and xfs), and no directory outside the volume can be
// reached to list or look up names. Keeping ROOT on a file system of its
// own (the chart's PVC) keeps the host's files out of reach altogether.

// errOutside is a sealed handle of an inode outside its volume.
var errOutside = errors.New("exports: handle names an inode outside its volume")

// maxWalk bounds the ".." walk: no legitimate tree is deeper (a path to
// it could not be named in PATH_MAX).
const maxWalk = 4096

// encloses checks that the inode open at fd (O_PATH) lies inside volume
// v, as above. It runs as the server, never as a caller, so search
// permission on the directories walked does not matter.
func (v *Volume) encloses(fd int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	r := v.root
	if st.Dev != r.dev {
		return errOutside
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return v.pathInside(fd)
	}
	cur := fd
	defer func() {
		if cur != fd {
			unix.Close(cur)
		}
	}()
	for range maxWalk {
		if st.Ino == r.ino && st.Dev == r.dev {
			return nil
		}
		up, err := unix.Openat(cur, "..", unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err // a directory removed under us: stale
		}
		if cur != fd {
			unix.Close(cur)
		}
		cur = up
		var pst unix.Stat_t
		if err := unix.Fstat(up, &pst); err != nil {
			return err
		}
		if pst.Dev != r.dev || (pst.Ino == st.Ino && pst.Dev == st.Dev) {
			return errOutside // left the file system, or reached its root
		}
		st = pst
	}
	return errOutside
}

// pathInside checks the path the kernel gives the inode open at fd, if
// it gives one: "/" alone is a disconnected dentry (no path known). The
// volume directory's own path is read from its descriptor, as the kernel
// sees it (symlinks in --root resolved), and read again if it seems to
// have moved (an operator renamed ROOT while nfsd runs).
func (v *Volume) pathInside(fd int) error {
	var buf [unix.PathMax]byte
	p, err := readFD(fd, buf[:])
	if err != nil || p == "/" {
		return nil
	}
	r := v.root
	if dir := r.path.Load(); dir != nil && under(p, *dir) {
		return nil
	}
	// First use, or ROOT moved: read the root's path again.
	var rbuf [unix.PathMax]byte
	dir, err := readFD(r.fd, rbuf[:])
	if err != nil {
		return nil
	}
	r.path.Store(&dir)
	if !under(p, dir) {
		return errOutside
	}
	return nil
}

// under reports whether path p lies below directory dir.
func under(p, dir string) bool {
	return len(p) > len(dir) && p[len(dir)] == '/' && p[:len(dir)] == dir
}

// readFD is the path the kernel gives descriptor fd (readlink of
// /proc/self/fd/N).
func readFD(fd int, buf []byte) (string, error) {
	var name [32]byte
	n, err := unix.Readlink(string(strconv.AppendInt(append(name[:0], "/proc/self/fd/"...), int64(fd), 10)), buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}
