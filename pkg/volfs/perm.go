package volfs

import (
	"golang.org/x/sys/unix"

	"github.com/rwxnfs/rwxnfs/pkg/fscred"
	"github.com/rwxnfs/rwxnfs/pkg/vfs"
)

// The checks the server makes itself. Namespace changes and SETATTR run
// as the caller, so the kernel checks those; READ and WRITE use a
// descriptor the server opened, and ACCESS is a question, so their rights
// are computed here from the mode bits.

// permits computes which access bits the mode bits of st give cred.
// Root may read and write anything and execute what has an execute bit.
func permits(st *unix.Stat_t, cred fscred.Cred, readOnly bool) uint32 {
	var r, w, x bool
	mode := st.Mode
	switch {
	case cred.UID == 0:
		r, w = true, true
		x = isDir(st) || mode&0o111 != 0
	case cred.UID == st.Uid:
		r, w, x = mode&0o400 != 0, mode&0o200 != 0, mode&0o100 != 0
	case cred.InGroup(st.Gid):
		r, w, x = mode&0o040 != 0, mode&0o020 != 0, mode&0o010 != 0
	default:
		r, w, x = mode&0o004 != 0, mode&0o002 != 0, mode&0o001 != 0
	}
	var bits uint32
	if r {
		bits |= vfs.AccessRead
	}
	if isDir(st) {
		if x {
			bits |= vfs.AccessLookup
		}
		if w && x {
			bits |= vfs.AccessModify | vfs.AccessExtend | vfs.AccessDelete
		}
	} else {
		if w {
			bits |= vfs.AccessModify | vfs.AccessExtend
		}
		if x {
			bits |= vfs.AccessExecute
		}
	}
	if readOnly {
		bits &^= vfs.AccessModify | vfs.AccessExtend | vfs.AccessDelete
	}
	return bits
}

// mayRead and mayWrite check data access for READ, WRITE and truncation.
// The owner may always read and write their file whatever its mode, as
// with knfsd: a client that created a file read-only still writes the
// data it opened it for. Read also allows execute, because clients
// execute programs by reading them.
func mayRead(st *unix.Stat_t, cred fscred.Cred) bool {
	return cred.UID == 0 || cred.UID == st.Uid || permits(st, cred, false)&(vfs.AccessRead|vfs.AccessExecute) != 0
}

func mayWrite(st *unix.Stat_t, cred fscred.Cred) bool {
	return cred.UID == 0 || cred.UID == st.Uid || permits(st, cred, false)&vfs.AccessModify != 0
}
