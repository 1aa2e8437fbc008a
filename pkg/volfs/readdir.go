package volfs

import (
	"context"
	"encoding/binary"

	"golang.org/x/sys/unix"

	"github.com/rwxnfs/rwxnfs/pkg/exports"
	"github.com/rwxnfs/rwxnfs/pkg/vfs"
)

// ReadDir implements vfs.FS. Cookies are the kernel's own directory
// offsets (getdents64 d_off), which the file system keeps valid across
// calls and restarts (ext4 and xfs use name hashes), so a listing resumes
// exactly where it stopped even when entries come and go in between; no
// cookie verifier is needed.
func (fs *FS) ReadDir(_ context.Context, c vfs.Caller, dirFH []byte, args vfs.ReadDirArgs, fn func(*vfs.DirEntry) bool) (vfs.ReadDirResult, error) {
	var res vfs.ReadDirResult
	var dst unix.Stat_t
	dir, err := fs.node(&c, dirFH, &dst, "READDIR")
	if err != nil {
		return res, err
	}
	defer fs.t.Release(dir)
	res.Dir = vfs.AttrResult{Attr: attrOf(&dst, dir.Vol.FSID), HasAttr: true}
	if !isDir(&dst) {
		return res, vfs.ErrNotDir
	}
	rights := permits(&dst, cred(&c, dir), false)
	if rights&vfs.AccessRead == 0 {
		return res, vfs.ErrAccess
	}
	// Attributes and handles of entries need search permission too.
	plusAttrs := args.Plus && rights&vfs.AccessLookup != 0
	fd, err := unix.Openat(dir.FD(), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return res, fs.fail("READDIR", err)
	}
	defer unix.Close(fd)
	if args.Cookie != 0 {
		if _, err := unix.Seek(fd, int64(args.Cookie), 0); err != nil {
			return res, vfs.ErrBadCookie
		}
	}
	buf := make([]byte, direntBuf(args.SizeHint, args.Plus))
	var e vfs.DirEntry
	var est unix.Stat_t
	for {
		k, err := unix.Getdents(fd, buf)
		if err != nil {
			return res, fs.fail("READDIR", err)
		}
		if k == 0 {
			res.EOF = true
			return res, nil
		}
		for off := 0; off < k; {
			ino := binary.NativeEndian.Uint64(buf[off:])
			next := binary.NativeEndian.Uint64(buf[off+8:])
			reclen := int(binary.NativeEndian.Uint16(buf[off+16:]))
			nameb := buf[off+19 : off+reclen]
			for i, b := range nameb {
				if b == 0 {
					nameb = nameb[:i]
					break
				}
			}
			off += reclen
			e.Name, e.FileID, e.Cookie = nameb, ino, next
			e.HasAttr, e.FH = false, nil
			if string(nameb) == ".." && dir.IsRoot() {
				e.FileID = dst.Ino // the volume's root is its own parent
			}
			if plusAttrs {
				fs.entryPlus(dir, fd, string(nameb), &e, &dst, &est)
			}
			if !fn(&e) {
				return res, nil
			}
		}
	}
}

// direntBuf sizes the getdents buffer to about what one reply can hold.
// Entries read but not sent are read again by the next call (from a fresh
// descriptor, seeking to the cookie), so reading far more than fits costs
// directory reads for nothing: a 32 KiB READDIRPLUS reply holds ~200
// entries of ~160 bytes, while 32 KiB of dirents is ~1,000 names, and those
// re-reads were a third of the server's CPU when listing a 100,000-entry
// directory. A READDIRPLUS entry is about five times its dirent (attributes
// and handle); a READDIR entry about the size of its dirent.
func direntBuf(reply int, plus bool) int {
	if plus {
		reply /= 4
	}
	return min(max(reply, 4096), 64<<10)
}

// entryPlus fetches an entry's attributes and handle, as the server; an
// entry that went away meanwhile is listed without them.
func (fs *FS) entryPlus(dir *exports.Node, fd int, name string, e *vfs.DirEntry, dst, st *unix.Stat_t) {
	if name == "." || name == ".." && dir.IsRoot() {
		setAttr(&e.Attr, dst, dir.Vol.FSID)
		e.FH, e.HasAttr = dir.Handle, true
		return
	}
	if unix.Fstatat(fd, name, st, unix.AT_SYMLINK_NOFOLLOW) != nil {
		return
	}
	setAttr(&e.Attr, st, dir.Vol.FSID)
	e.HasAttr = true
	if h, err := fs.t.HandleAt(dir.Vol, fd, name); err == nil {
		e.FH = h
	}
}
