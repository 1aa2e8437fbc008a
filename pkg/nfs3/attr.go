package nfs3

import (
	"golang.org/x/sys/unix"

	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// File types (ftype3).
const (
	typeReg  = 1
	typeDir  = 2
	typeBlk  = 3
	typeChr  = 4
	typeLnk  = 5
	typeSock = 6
	typeFifo = 7
)

func ftype(mode uint32) uint32 {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return typeReg
	case unix.S_IFDIR:
		return typeDir
	case unix.S_IFBLK:
		return typeBlk
	case unix.S_IFCHR:
		return typeChr
	case unix.S_IFLNK:
		return typeLnk
	case unix.S_IFSOCK:
		return typeSock
	case unix.S_IFIFO:
		return typeFifo
	}
	return typeReg
}

func isDir(st *unix.Stat_t) bool { return st.Mode&unix.S_IFMT == unix.S_IFDIR }
func isReg(st *unix.Stat_t) bool { return st.Mode&unix.S_IFMT == unix.S_IFREG }
func isLnk(st *unix.Stat_t) bool { return st.Mode&unix.S_IFMT == unix.S_IFLNK }

// fattrSize is the encoded size of fattr3.
const fattrSize = 84

// writeFattr encodes fattr3. fsid is the volume's, so every volume looks
// like its own file system to clients.
func writeFattr(w *xdr.Writer, st *unix.Stat_t, fsid uint64) {
	w.Uint32(ftype(st.Mode))
	w.Uint32(st.Mode & 0o7777)
	w.Uint32(uint32(st.Nlink))
	w.Uint32(st.Uid)
	w.Uint32(st.Gid)
	w.Uint64(uint64(st.Size))
	w.Uint64(uint64(st.Blocks) * 512)
	w.Uint32(unix.Major(st.Rdev))
	w.Uint32(unix.Minor(st.Rdev))
	w.Uint64(fsid)
	w.Uint64(st.Ino)
	writeTime(w, st.Atim)
	writeTime(w, st.Mtim)
	writeTime(w, st.Ctim)
}

func writeTime(w *xdr.Writer, t unix.Timespec) {
	w.Uint32(uint32(t.Sec))
	w.Uint32(uint32(t.Nsec))
}

// writePostOp encodes post_op_attr; st nil means "no attributes".
func writePostOp(w *xdr.Writer, st *unix.Stat_t, fsid uint64) {
	if st == nil {
		w.Bool(false)
		return
	}
	w.Bool(true)
	writeFattr(w, st, fsid)
}

// wcc holds what weak cache consistency data reports of a directory or
// file around a change.
type wcc struct {
	pre, post *unix.Stat_t
	fsid      uint64
}

func (c *wcc) write(w *xdr.Writer) {
	if c.pre == nil {
		w.Bool(false)
	} else {
		w.Bool(true)
		w.Uint64(uint64(c.pre.Size))
		writeTime(w, c.pre.Mtim)
		writeTime(w, c.pre.Ctim)
	}
	writePostOp(w, c.post, c.fsid)
}

// sattr is a decoded sattr3.
type sattr struct {
	setMode, setUID, setGID, setSize bool
	mode, uid, gid                   uint32
	size                             uint64
	atime, mtime                     timeHow
}

type timeHow struct {
	how uint32 // 0 don't change, 1 server time, 2 client time
	t   unix.Timespec
}

const (
	dontChange       = 0
	setToServerTime  = 1
	setToClientTime  = 2
	maxNSec          = 999999999
	timeHowMaxChoice = 2
)

func readSattr(r *xdr.Reader) sattr {
	var s sattr
	if s.setMode = r.Bool(); s.setMode {
		s.mode = r.Uint32() & 0o7777
	}
	if s.setUID = r.Bool(); s.setUID {
		s.uid = r.Uint32()
	}
	if s.setGID = r.Bool(); s.setGID {
		s.gid = r.Uint32()
	}
	if s.setSize = r.Bool(); s.setSize {
		s.size = r.Uint64()
	}
	s.atime = readTimeHow(r)
	s.mtime = readTimeHow(r)
	return s
}

func readTimeHow(r *xdr.Reader) timeHow {
	var t timeHow
	t.how = r.Uint32()
	switch t.how {
	case dontChange, setToServerTime:
	case setToClientTime:
		t.t.Sec = int64(r.Uint32())
		t.t.Nsec = int64(r.Uint32())
		if t.t.Nsec > maxNSec {
			r.Fail(errBadTime)
		}
	default:
		r.Fail(errBadTime)
	}
	return t
}

func (t timeHow) timespec() unix.Timespec {
	switch t.how {
	case setToServerTime:
		return unix.Timespec{Nsec: unix.UTIME_NOW}
	case setToClientTime:
		return t.t
	}
	return unix.Timespec{Nsec: unix.UTIME_OMIT}
}
