package nfsclient

import (
	"time"

	"github.com/rwxnfs/rwxnfs/pkg/nfs3/wire"
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

// File types (ftype3; wire.FileType, untyped).
const (
	TypeReg  = 1
	TypeDir  = 2
	TypeLnk  = 5
	TypeFifo = 7
)

func attrOf(a *wire.Fattr) Attr {
	return Attr{
		Type: uint32(a.Type), Mode: a.Mode, Nlink: a.Nlink, UID: a.UID, GID: a.GID,
		Size: a.Size, Used: a.Used, Major: a.Rdev.Major, Minor: a.Rdev.Minor,
		FSID: a.FSID, FileID: a.FileID,
		Atime: timeOf(a.Atime), Mtime: timeOf(a.Mtime), Ctime: timeOf(a.Ctime),
	}
}

func timeOf(t wire.Time) time.Time { return time.Unix(int64(t.Sec), int64(t.Nsec)) }

func postOp(p *wire.PostOpAttr) *Attr {
	if !p.Set {
		return nil
	}
	a := attrOf(&p.Attr)
	return &a
}

// SetAttr says which attributes to set; nil fields stay.
type SetAttr struct {
	Mode, UID, GID *uint32
	Size           *uint64
	Atime, Mtime   *time.Time
}

func (s SetAttr) sattr() wire.Sattr {
	var out wire.Sattr
	if s.Mode != nil {
		out.SetMode, out.Mode = true, *s.Mode
	}
	if s.UID != nil {
		out.SetUID, out.UID = true, *s.UID
	}
	if s.GID != nil {
		out.SetGID, out.GID = true, *s.GID
	}
	if s.Size != nil {
		out.SetSize, out.Size = true, *s.Size
	}
	for _, p := range []struct {
		t   *time.Time
		set *wire.SetTime
	}{{s.Atime, &out.Atime}, {s.Mtime, &out.Mtime}} {
		if p.t != nil {
			*p.set = wire.SetTime{How: wire.SetToClientTime, Time: wire.Time{Sec: uint32(p.t.Unix()), Nsec: uint32(p.t.Nanosecond())}}
		}
	}
	return out
}

// U32 and U64 help fill SetAttr.
func U32(v uint32) *uint32 { return &v }
func U64(v uint64) *uint64 { return &v }
