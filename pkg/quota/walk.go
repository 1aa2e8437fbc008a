package quota

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// WalkHook, if set, runs at every entry a reconcile walk meets: tests
// use it to slow the walk down so that operations interleave with it.
var WalkHook func()

// walk is the state of a reconcile walk. It is guarded by Volume.mu.
//
// The walk runs while the volume is served. It stays exact because of one
// rule: an inode is counted exactly once, at the first moment either the
// walk meets it or an operation is about to change it (Touch) or has just
// created it (Created); from then on every change to it is added to the
// walk's sum as well as to the live usage (addLocked). So whatever the
// interleaving, the sum is "the tree as it was when each inode was first
// seen, plus every change since", which is the tree now.
//
// Directories moved during the walk might leave the part of the tree the
// walk has yet to list for a part it has finished; a moved directory is
// therefore queued (by handle) to be listed wherever it is, unless the
// walk already holds it open.
type walk struct {
	sum    Usage
	seen   map[uint64]struct{} // inodes counted
	listed map[uint64]struct{} // directories opened for listing
	extra  [][]byte            // handles of moved directories to list
}

func (w *walk) see(ino uint64, bytes int64) {
	if _, ok := w.seen[ino]; ok {
		return
	}
	w.seen[ino] = struct{}{}
	w.sum.Bytes += bytes
	w.sum.Inodes++
}

func (w *walk) enqueue(ino uint64, key []byte) {
	if _, ok := w.listed[ino]; !ok {
		w.extra = append(w.extra, append([]byte(nil), key...))
	}
}

// Charge is the byte charge of an inode with these attributes.
func Charge(st *unix.Stat_t) int64 {
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG, unix.S_IFLNK:
		return st.Size
	}
	return 0
}

// ReconcileResult reports a walk.
type ReconcileResult struct {
	Before, After Usage
	Entries       int64
}

// Reconcile walks the tree under the directory rootFD (not closed) and
// replaces the usage by what the tree holds. open turns a directory's
// handle, given to Touch, back into a descriptor. Operations on the volume
// may run meanwhile; enforcement uses the previous usage plus their
// changes until the walk ends.
func (v *Volume) Reconcile(rootFD int, open func(key []byte) (int, error)) (ReconcileResult, error) {
	var res ReconcileResult
	var rootSt unix.Stat_t
	if err := unix.Fstat(rootFD, &rootSt); err != nil {
		return res, err
	}
	v.mu.Lock()
	if v.rec != nil {
		v.mu.Unlock()
		return res, errors.New("quota: a reconcile is already running")
	}
	// The root is not counted: usage is what lies below it.
	w := &walk{seen: map[uint64]struct{}{rootSt.Ino: {}}, listed: map[uint64]struct{}{}}
	v.rec = w
	v.mu.Unlock()
	defer func() {
		v.mu.Lock()
		v.rec = nil
		v.mu.Unlock()
	}()

	dup, err := unix.Dup(rootFD)
	if err != nil {
		return res, err
	}
	if err := v.walkDir(w, dup, &res.Entries); err != nil {
		return res, err
	}
	for {
		v.mu.Lock()
		if len(w.extra) == 0 {
			// Done: the sum is the usage. Swap it in atomically with
			// respect to every charge.
			res.Before, res.After = v.used, w.sum
			v.used = w.sum
			v.dirty = true
			v.mu.Unlock()
			break
		}
		key := w.extra[0]
		w.extra = w.extra[1:]
		v.mu.Unlock()
		fd, err := open(key)
		if err != nil {
			continue // removed since it moved: nothing left to count
		}
		if err := v.walkDir(w, fd, &res.Entries); err != nil {
			return res, err
		}
	}
	// Saved first, so that whoever sees Reconciled also finds the
	// reconciled figure on disk.
	err = v.Flush()
	v.reconciled.Store(true)
	return res, err
}

// walkDir lists the directory fd (and closes it), counting every entry and
// descending into subdirectories, unless another path already listed it.
func (v *Volume) walkDir(w *walk, fd int, entries *int64) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return err
	}
	v.mu.Lock()
	_, done := w.listed[st.Ino]
	w.listed[st.Ino] = struct{}{}
	v.mu.Unlock()
	f := os.NewFile(uintptr(fd), "dir")
	defer f.Close()
	if done {
		return nil
	}
	for {
		names, err := f.Readdirnames(4096)
		for _, name := range names {
			var est unix.Stat_t
			if err := unix.Fstatat(fd, name, &est, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				if errors.Is(err, unix.ENOENT) {
					continue // removed meanwhile, after or without a Touch
				}
				return fmt.Errorf("stat %s: %w", name, err)
			}
			*entries++
			if WalkHook != nil {
				WalkHook()
			}
			v.mu.Lock()
			w.see(est.Ino, Charge(&est))
			_, listed := w.listed[est.Ino]
			v.mu.Unlock()
			if est.Mode&unix.S_IFMT != unix.S_IFDIR || listed {
				continue
			}
			sub, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				// Moved or removed since the stat: a move queued it.
				continue
			}
			if err := v.walkDir(w, sub, entries); err != nil {
				return err
			}
		}
		if err == io.EOF || (err == nil && len(names) == 0) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
