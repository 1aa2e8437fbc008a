package nfsclient

import (
	"time"

	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// Attr is a decoded fattr3.
type Attr struct {
	Type                uint32
	Mode                uint32
	Nlink, UID, GID     uint32
	Size, Used          uint64
	Major, Minor        uint32
	FSID, FileID        uint64
	Atime, Mtime, Ctime time.Time
}

// File types.
const (
	TypeReg  = 1
	TypeDir  = 2
	TypeLnk  = 5
	TypeFifo = 7
)

func readAttr(r *xdr.Reader) Attr {
	var a Attr
	a.Type = r.Uint32()
	a.Mode = r.Uint32()
	a.Nlink = r.Uint32()
	a.UID = r.Uint32()
	a.GID = r.Uint32()
	a.Size = r.Uint64()
	a.Used = r.Uint64()
	a.Major = r.Uint32()
	a.Minor = r.Uint32()
	a.FSID = r.Uint64()
	a.FileID = r.Uint64()
	a.Atime = readTime(r)
	a.Mtime = readTime(r)
	a.Ctime = readTime(r)
	return a
}

func readTime(r *xdr.Reader) time.Time {
	s, ns := r.Uint32(), r.Uint32()
	return time.Unix(int64(s), int64(ns))
}

func readPostOp(r *xdr.Reader) *Attr {
	if !r.Bool() {
		return nil
	}
	a := readAttr(r)
	return &a
}

func skipWcc(r *xdr.Reader) *Attr {
	if r.Bool() {
		r.Uint64()
		readTime(r)
		readTime(r)
	}
	return readPostOp(r)
}

// SetAttr says which attributes to set; nil fields stay.
type SetAttr struct {
	Mode, UID, GID *uint32
	Size           *uint64
	Atime, Mtime   *time.Time
}

func (s SetAttr) write(w *xdr.Writer) {
	opt32 := func(p *uint32) {
		w.Bool(p != nil)
		if p != nil {
			w.Uint32(*p)
		}
	}
	opt32(s.Mode)
	opt32(s.UID)
	opt32(s.GID)
	w.Bool(s.Size != nil)
	if s.Size != nil {
		w.Uint64(*s.Size)
	}
	for _, t := range []*time.Time{s.Atime, s.Mtime} {
		if t == nil {
			w.Uint32(0)
			continue
		}
		w.Uint32(2)
		w.Uint32(uint32(t.Unix()))
		w.Uint32(uint32(t.Nanosecond()))
	}
}

// U32 and U64 help fill SetAttr.
func U32(v uint32) *uint32 { return &v }
func U64(v uint64) *uint64 { return &v }
