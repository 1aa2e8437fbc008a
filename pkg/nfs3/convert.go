package nfs3

import (
	"github.com/rwxnfs/rwxnfs/pkg/nfs3/wire"
	"github.com/rwxnfs/rwxnfs/pkg/vfs"
)

// Between the layer's types and the wire's.

func nfsTime(t vfs.Time) wire.Time { return wire.Time{Sec: uint32(t.Sec), Nsec: uint32(t.Nsec)} }

func fattr(a *vfs.Attr) wire.Fattr {
	var f wire.Fattr
	setFattr(&f, a)
	return f
}

// setFattr fills f in place (see volfs's setAttr).
func setFattr(f *wire.Fattr, a *vfs.Attr) {
	f.Type, f.Mode, f.Nlink, f.UID, f.GID = wire.FileType(a.Type), a.Mode, a.Nlink, a.UID, a.GID
	f.Size, f.Used = a.Size, a.Used
	f.Rdev.Major, f.Rdev.Minor = a.Major, a.Minor
	f.FSID, f.FileID = a.FSID, a.FileID
	f.Atime, f.Mtime, f.Ctime = nfsTime(a.Atime), nfsTime(a.Mtime), nfsTime(a.Ctime)
}

func postOp(a *vfs.AttrResult) wire.PostOpAttr {
	if !a.HasAttr {
		return wire.PostOpAttr{}
	}
	return wire.PostOpAttr{Set: true, Attr: fattr(&a.Attr)}
}

func wccData(w *vfs.Wcc) wire.WccData {
	var d wire.WccData
	if w.HasBefore {
		d.Before = wire.PreOpAttr{Set: true, Attr: wire.WccAttr{Size: w.Before.Size, Mtime: nfsTime(w.Before.Mtime), Ctime: nfsTime(w.Before.Ctime)}}
	}
	if w.HasAfter {
		d.After = wire.PostOpAttr{Set: true, Attr: fattr(&w.After)}
	}
	return d
}

func setTime(t wire.SetTime) vfs.SetTime {
	switch t.How {
	case wire.SetToServerTime:
		return vfs.SetTime{How: vfs.ServerTime}
	case wire.SetToClientTime:
		return vfs.SetTime{How: vfs.ClientTime, Time: vfs.Time{Sec: int64(t.Time.Sec), Nsec: int64(t.Time.Nsec)}}
	}
	return vfs.SetTime{}
}

func setAttr(s *wire.Sattr) vfs.SetAttr {
	return vfs.SetAttr{
		SetMode: s.SetMode, SetUID: s.SetUID, SetGID: s.SetGID, SetSize: s.SetSize,
		Mode: s.Mode, UID: s.UID, GID: s.GID, Size: s.Size,
		Atime: setTime(s.Atime), Mtime: setTime(s.Mtime),
	}
}
