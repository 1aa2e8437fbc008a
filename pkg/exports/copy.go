package exports

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/rwxnfs/rwxnfs/pkg/quota"
)

// copyJob says how a copy runs: ctx cancels it (checked between entries
// and between data chunks), progress counts the bytes it has written
// (for Capacity), hook is a test's look at each entry once it is pinned.
type copyJob struct {
	ctx      context.Context
	progress *atomic.Int64
	hook     func(rel string)
}

// copyTree copies the tree under the directory src into the existing,
// empty directory dst, keeping owners, modes (set-id bits included),
// times, symlinks, hard links, device nodes, FIFOs and sparse files
// (holes stay holes: data is copied extent by extent between SEEK_DATA
// and SEEK_HOLE). It also gives dst's root the owner, mode and times of
// src's root. It returns the usage of what it made, in quota's unit.
// Extended attributes and ACLs are not copied.
//
// The source may be changing (a snapshot or clone of a served volume):
// each file is copied as it is while it is read, so the result is
// consistent per file at best, like a copy of a crashed file system. An
// entry removed before the copier reaches it is not in the copy.
//
// Clients control what the source holds and can swap any entry for
// another between two system calls, so the copier never decides from a
// name: it pins each entry with an O_PATH descriptor (which opens
// nothing: no FIFO blocks, no device driver is called), takes the type
// from fstat of that descriptor, and reaches the data only through it.
func copyTree(job copyJob, src, dst string) (quota.Usage, error) {
	if job.ctx == nil {
		job.ctx = context.Background()
	}
	c := &copier{job: job, links: make(map[uint64]string), dstRoot: dst}
	sfd, err := unix.Open(src, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return c.usage, fmt.Errorf("open %s: %w", src, err)
	}
	dfd, err := unix.Open(dst, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(sfd)
		return c.usage, fmt.Errorf("open %s: %w", dst, err)
	}
	var st unix.Stat_t
	if err = unix.Fstat(sfd, &st); err == nil {
		err = c.dir(sfd, dfd, "")
	}
	if err == nil {
		err = c.attrs(dfd, "", &st)
	}
	unix.Close(sfd)
	unix.Close(dfd)
	return c.usage, err
}

type copier struct {
	job     copyJob
	dstRoot string
	links   map[uint64]string // source inode with several links -> its first copy, relative to dstRoot
	usage   quota.Usage
	buf     []byte
}

// dir copies the entries of sfd into dfd; rel is dfd's path below dstRoot.
func (c *copier) dir(sfd, dfd int, rel string) error {
	// Read a duplicate: the *os.File closes it, the caller owns sfd.
	dup, err := unix.Dup(sfd)
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(dup), "src")
	defer d.Close()
	for {
		names, rerr := d.Readdirnames(1024)
		for _, name := range names {
			if err := c.entry(sfd, dfd, name, filepath.Join(rel, name)); err != nil {
				return err
			}
		}
		if rerr == io.EOF || (rerr == nil && len(names) == 0) {
			return nil
		}
		if errors.Is(rerr, unix.ENOENT) {
			return nil // the directory was removed while we listed it
		}
		if rerr != nil {
			return rerr
		}
	}
}

// reopen opens the inode an O_PATH descriptor pins, for real: through
// /proc, so it is that inode whatever its name now leads to.
func reopen(pfd int, flags int) (int, error) {
	return unix.Open(procPath(pfd, ""), flags|unix.O_CLOEXEC, 0)
}

func (c *copier) entry(sfd, dfd int, name, rel string) error {
	if err := c.job.ctx.Err(); err != nil {
		return err
	}
	pfd, err := unix.Openat(sfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil // removed since it was listed: not in the copy
	}
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return err
	}
	if c.job.hook != nil {
		c.job.hook(rel)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR && st.Nlink > 1 {
		if first, ok := c.links[st.Ino]; ok {
			return unix.Linkat(unix.AT_FDCWD, filepath.Join(c.dstRoot, first), dfd, name, 0)
		}
		c.links[st.Ino] = rel
	}
	c.usage.Inodes++
	c.usage.Bytes += quota.Charge(&st)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		s, err := reopen(pfd, unix.O_RDONLY|unix.O_DIRECTORY)
		if err != nil {
			return err
		}
		defer unix.Close(s)
		if err := unix.Mkdirat(dfd, name, 0o700); err != nil {
			return err
		}
		d, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(d)
		if err := c.dir(s, d, rel); err != nil {
			return err
		}
		// Times last: making the entries changed the directory's mtime.
		return c.attrs(d, "", &st)
	case unix.S_IFREG:
		// O_NONBLOCK as a second guard: nothing but a regular file gets here.
		in, err := reopen(pfd, unix.O_RDONLY|unix.O_NONBLOCK)
		if err != nil {
			return err
		}
		defer unix.Close(in)
		return c.file(in, dfd, name, &st)
	case unix.S_IFLNK:
		target := make([]byte, st.Size+1)
		n, err := unix.Readlinkat(pfd, "", target)
		if err != nil {
			return err
		}
		if err := unix.Symlinkat(string(target[:n]), dfd, name); err != nil {
			return err
		}
		return c.attrs(dfd, name, &st)
	case unix.S_IFIFO, unix.S_IFSOCK, unix.S_IFCHR, unix.S_IFBLK:
		// Made, never opened.
		if err := unix.Mknodat(dfd, name, st.Mode, int(st.Rdev)); err != nil {
			return err
		}
		return c.attrs(dfd, name, &st)
	}
	return fmt.Errorf("%s: unknown file type %o", rel, st.Mode&unix.S_IFMT)
}

// file copies a regular file's data from in, hole by hole.
func (c *copier) file(in, dfd int, name string, st *unix.Stat_t) error {
	out, err := unix.Openat(dfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	defer unix.Close(out)
	var off int64
	for off < st.Size {
		data, err := unix.Seek(in, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole is left
		}
		if err != nil {
			return err
		}
		hole, err := unix.Seek(in, data, unix.SEEK_HOLE)
		if err != nil {
			return err
		}
		if hole <= data {
			break // the file shrank under us
		}
		if err := c.copyRange(in, out, data, min(hole, st.Size)-data); err != nil {
			return err
		}
		off = hole
	}
	// The size, also covering a hole at the end.
	if err := unix.Ftruncate(out, st.Size); err != nil {
		return err
	}
	if err := unix.Fsync(out); err != nil {
		return err
	}
	return c.attrs(out, "", st)
}

func (c *copier) copyRange(in, out int, off, n int64) error {
	if c.buf == nil {
		c.buf = make([]byte, 1<<20)
	}
	for n > 0 {
		if err := c.job.ctx.Err(); err != nil {
			return err
		}
		k := min(int64(len(c.buf)), n)
		r, err := unix.Pread(in, c.buf[:k], off)
		if err != nil {
			return err
		}
		if r == 0 {
			return nil // the file shrank while we copied
		}
		for done := 0; done < r; {
			w, err := unix.Pwrite(out, c.buf[done:r], off+int64(done))
			if err != nil {
				return err
			}
			done += w
		}
		if c.job.progress != nil {
			c.job.progress.Add(int64(r))
		}
		off += int64(r)
		n -= int64(r)
	}
	return nil
}

// attrs gives the entry name in dirfd ("" for dirfd itself) the owner,
// mode and times of st. Owner goes first, because chown clears set-id
// bits that the chmod after it restores.
func (c *copier) attrs(dirfd int, name string, st *unix.Stat_t) error {
	flags := unix.AT_SYMLINK_NOFOLLOW
	if name == "" {
		flags = unix.AT_EMPTY_PATH
	}
	if err := unix.Fchownat(dirfd, name, int(st.Uid), int(st.Gid), flags); err != nil {
		return err
	}
	isLink := st.Mode&unix.S_IFMT == unix.S_IFLNK
	if !isLink {
		target := procPath(dirfd, name)
		if err := unix.Fchmodat(unix.AT_FDCWD, target, st.Mode&0o7777, 0); err != nil {
			return err
		}
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if name == "" {
		return unix.UtimesNanoAt(unix.AT_FDCWD, procPath(dirfd, ""), ts, 0)
	}
	return unix.UtimesNanoAt(dirfd, name, ts, unix.AT_SYMLINK_NOFOLLOW)
}

func procPath(dirfd int, name string) string {
	p := fmt.Sprintf("/proc/self/fd/%d", dirfd)
	if name != "" {
		p += "/" + name
	}
	return p
}
