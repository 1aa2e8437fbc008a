package nfs3

import (
	"encoding/binary"

	"golang.org/x/sys/unix"

	"github.com/rwxnfs/rwxnfs/pkg/exports"
)

// READDIR and READDIRPLUS. Cookies are the kernel's own directory offsets
// (getdents64 d_off), which the file system keeps valid across calls and
// restarts (ext4 and xfs use name hashes), so a listing resumes exactly
// where it stopped even when entries come and go in between; the cookie
// verifier is therefore not needed and is always zero.

func (c *call) readdir() Status { return c.listDir(false) }

func (c *call) readdirplus() Status { return c.listDir(true) }

// Reply sizes: the fixed part of a READDIR(PLUS) reply (status, dir
// attributes, verifier, list end, eof) and of one entry.
const (
	listHeader   = 4 + 4 + fattrSize + 8 + 4 + 4
	entryFixed   = 4 + 8 + 4 + 8
	entryPlusFix = 4 + fattrSize + 4 + 4
)

func (c *call) listDir(plus bool) Status {
	fh := readHandle(c.r)
	cookie := c.r.Uint64()
	c.r.FixedOpaque(8) // cookie verifier: see above
	maxReply := c.r.Uint32()
	if plus {
		maxReply = c.r.Uint32() // maxcount; dircount is a hint, as in knfsd
	}
	if !c.args() {
		return OK
	}
	maxReply = min(maxReply, MaxIO)
	dir, st := c.node(fh)
	if st != OK {
		c.w.Uint32(uint32(st))
		writePostOp(c.w, nil, 0)
		return st
	}
	var dattr unix.Stat_t
	if st := c.stat(dir, &dattr); st != OK {
		c.w.Uint32(uint32(st))
		writePostOp(c.w, nil, 0)
		return st
	}
	fail := func(st Status) Status {
		c.w.Uint32(uint32(st))
		writePostOp(c.w, &dattr, dir.Vol.FSID)
		return st
	}
	if !isDir(&dattr) {
		return fail(errNotDir)
	}
	rights := permits(&dattr, c.cred(dir.Vol), false)
	if rights&accessRead == 0 {
		return fail(errAccess)
	}
	// Attributes and handles of entries need search permission too.
	plusAttrs := plus && rights&accessLookup != 0
	fd, err := unix.Openat(dir.FD(), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail(c.status(err))
	}
	defer unix.Close(fd)
	if cookie != 0 {
		if _, err := unix.Seek(fd, int64(cookie), 0); err != nil {
			return fail(errBadCookie)
		}
	}
	start := c.w.Len()
	c.w.Uint32(uint32(OK))
	writePostOp(c.w, &dattr, dir.Vol.FSID)
	c.w.Uint64(0) // cookie verifier
	used := listHeader
	entries := 0
	eof := false
	buf := make([]byte, direntBuf(maxReply, plus))
	var est unix.Stat_t
fill:
	for {
		k, err := unix.Getdents(fd, buf)
		if err != nil {
			c.w.Truncate(start)
			return fail(c.status(err))
		}
		if k == 0 {
			eof = true
			break
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
			name := string(nameb)
			if name == ".." && dir.IsRoot() {
				ino = dattr.Ino // the volume's root is its own parent
			}
			size := entryFixed + len(name) + (4-len(name)&3)&3
			var handle []byte
			var attrs *unix.Stat_t
			if plus {
				if plusAttrs {
					handle, attrs = c.entryPlus(dir, fd, name, &dattr, &est)
				}
				size += entryPlusFix + len(handle) + (4-len(handle)&3)&3
			}
			if used+size > int(maxReply) {
				if entries == 0 {
					c.w.Truncate(start)
					return fail(errTooSmall)
				}
				break fill
			}
			used += size
			entries++
			c.w.Bool(true)
			c.w.Uint64(ino)
			c.w.String(name)
			c.w.Uint64(next)
			if plus {
				writePostOp(c.w, attrs, dir.Vol.FSID)
				if handle != nil {
					c.w.Bool(true)
					c.w.Opaque(handle)
				} else {
					c.w.Bool(false)
				}
			}
		}
	}
	c.w.Bool(false)
	c.w.Bool(eof)
	return OK
}

const errBadCookie = Status(10003)

// direntBuf sizes the getdents buffer to about what one reply can hold.
// Entries read but not sent are read again by the next call (from a fresh
// descriptor, seeking to the cookie), so reading far more than fits costs
// directory reads for nothing: a 32 KiB READDIRPLUS reply holds ~200
// entries of ~160 bytes, while 32 KiB of dirents is ~1,000 names, and those
// re-reads were a third of the server's CPU when listing a 100,000-entry
// directory. A READDIRPLUS entry is about five times its dirent (attributes
// and handle); a READDIR entry about the size of its dirent.
func direntBuf(maxReply uint32, plus bool) int {
	n := int(maxReply)
	if plus {
		n /= 4
	}
	return min(max(n, 4096), 64<<10)
}

// entryPlus fetches an entry's attributes and handle; an entry that went
// away meanwhile is listed without them.
func (c *call) entryPlus(dir *exports.Node, fd int, name string, dattr, st *unix.Stat_t) ([]byte, *unix.Stat_t) {
	switch {
	case name == ".", name == ".." && dir.IsRoot():
		return dir.Handle, dattr
	}
	if unix.Fstatat(fd, name, st, unix.AT_SYMLINK_NOFOLLOW) != nil {
		return nil, nil
	}
	h, err := c.h.Table.HandleAt(dir.Vol, fd, name)
	if err != nil {
		return nil, st
	}
	return h, st
}
