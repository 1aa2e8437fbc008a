// Package wire is NFS version 3 and MOUNT version 3 as they travel (RFC
// 1813): program and procedure numbers, statuses, and one struct per
// procedure's arguments and results, each with one encoder and one
// decoder. The server (pkg/nfs3), our client (pkg/nfsclient) and the fuzz
// targets all use these, so a procedure's layout, including the reply it
// sends when it fails, is written down once.
//
// Decoders bound every variable-length item and fail (the reader's
// sticky error) on anything RFC 1813 does not allow; what decodes
// encodes back to the same bytes.
package wire

import "strconv"

// Program and version numbers.
const (
	Program      = 100003
	Version      = 3
	MountProgram = 100005
	MountVersion = 3
)

// NFSv3 procedures.
const (
	ProcNull        = 0
	ProcGetattr     = 1
	ProcSetattr     = 2
	ProcLookup      = 3
	ProcAccess      = 4
	ProcReadlink    = 5
	ProcRead        = 6
	ProcWrite       = 7
	ProcCreate      = 8
	ProcMkdir       = 9
	ProcSymlink     = 10
	ProcMknod       = 11
	ProcRemove      = 12
	ProcRmdir       = 13
	ProcRename      = 14
	ProcLink        = 15
	ProcReaddir     = 16
	ProcReaddirplus = 17
	ProcFsstat      = 18
	ProcFsinfo      = 19
	ProcPathconf    = 20
	ProcCommit      = 21
	NumProcs        = 22
)

var procNames = [NumProcs]string{
	"Null", "GetAttr", "SetAttr", "Lookup", "Access", "ReadLink", "Read", "Write",
	"Create", "Mkdir", "Symlink", "Mknod", "Remove", "Rmdir", "Rename", "Link",
	"ReadDir", "ReadDirPlus", "FSStat", "FSInfo", "PathConf", "Commit",
}

// ProcName is a procedure's name, as metrics label it.
func ProcName(proc uint32) string {
	if proc < NumProcs {
		return procNames[proc]
	}
	return "Unknown"
}

// MOUNT procedures (the same numbers in versions 1 to 3).
const (
	MountProcNull    = 0
	MountProcMnt     = 1
	MountProcDump    = 2
	MountProcUmnt    = 3
	MountProcUmntAll = 4
	MountProcExport  = 5
)

var mountProcNames = []string{"Null", "Mnt", "Dump", "Umnt", "UmntAll", "Export"}

// MountProcName is a MOUNT procedure's name, as metrics label it.
func MountProcName(proc uint32) string {
	if int(proc) < len(mountProcNames) {
		return mountProcNames[proc]
	}
	return "Unknown"
}

// Status is nfsstat3.
type Status uint32

// nfsstat3 values.
const (
	OK             Status = 0
	ErrPerm        Status = 1
	ErrNoEnt       Status = 2
	ErrIO          Status = 5
	ErrNXIO        Status = 6
	ErrAccess      Status = 13
	ErrExist       Status = 17
	ErrXDev        Status = 18
	ErrNoDev       Status = 19
	ErrNotDir      Status = 20
	ErrIsDir       Status = 21
	ErrInval       Status = 22
	ErrFBig        Status = 27
	ErrNoSpc       Status = 28
	ErrROFS        Status = 30
	ErrMLink       Status = 31
	ErrNameTooLong Status = 63
	ErrNotEmpty    Status = 66
	ErrDQuot       Status = 69
	ErrStale       Status = 70
	ErrRemote      Status = 71
	ErrBadHandle   Status = 10001
	ErrNotSync     Status = 10002
	ErrBadCookie   Status = 10003
	ErrNotSupp     Status = 10004
	ErrTooSmall    Status = 10005
	ErrServerFault Status = 10006
	ErrBadType     Status = 10007
	ErrJukebox     Status = 10008
)

var statusNames = map[Status]string{
	OK: "NFS3_OK", ErrPerm: "NFS3ERR_PERM", ErrNoEnt: "NFS3ERR_NOENT", ErrIO: "NFS3ERR_IO",
	ErrNXIO: "NFS3ERR_NXIO", ErrAccess: "NFS3ERR_ACCES", ErrExist: "NFS3ERR_EXIST",
	ErrXDev: "NFS3ERR_XDEV", ErrNoDev: "NFS3ERR_NODEV", ErrNotDir: "NFS3ERR_NOTDIR",
	ErrIsDir: "NFS3ERR_ISDIR", ErrInval: "NFS3ERR_INVAL", ErrFBig: "NFS3ERR_FBIG",
	ErrNoSpc: "NFS3ERR_NOSPC", ErrROFS: "NFS3ERR_ROFS", ErrMLink: "NFS3ERR_MLINK",
	ErrNameTooLong: "NFS3ERR_NAMETOOLONG", ErrNotEmpty: "NFS3ERR_NOTEMPTY", ErrDQuot: "NFS3ERR_DQUOT",
	ErrStale: "NFS3ERR_STALE", ErrRemote: "NFS3ERR_REMOTE", ErrBadHandle: "NFS3ERR_BADHANDLE",
	ErrNotSync: "NFS3ERR_NOT_SYNC", ErrBadCookie: "NFS3ERR_BAD_COOKIE", ErrNotSupp: "NFS3ERR_NOTSUPP",
	ErrTooSmall: "NFS3ERR_TOOSMALL", ErrServerFault: "NFS3ERR_SERVERFAULT", ErrBadType: "NFS3ERR_BADTYPE",
	ErrJukebox: "NFS3ERR_JUKEBOX",
}

// String is the RFC 1813 name of the status.
func (s Status) String() string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return "NFS3ERR_" + strconv.FormatUint(uint64(s), 10)
}

// Known reports whether s is an nfsstat3 RFC 1813 defines.
func (s Status) Known() bool {
	_, ok := statusNames[s]
	return ok
}

// MountStatus is mountstat3.
type MountStatus uint32

// mountstat3 values.
const (
	MountOK             MountStatus = 0
	MountErrPerm        MountStatus = 1
	MountErrNoEnt       MountStatus = 2
	MountErrIO          MountStatus = 5
	MountErrAccess      MountStatus = 13
	MountErrNotDir      MountStatus = 20
	MountErrInval       MountStatus = 22
	MountErrNameTooLong MountStatus = 63
	MountErrNotSupp     MountStatus = 10004
	MountErrServerFault MountStatus = 10006
)

// Limits of what the decoders accept.
const (
	// MaxHandle is NFS3_FHSIZE.
	MaxHandle = 64
	// MaxName bounds a filename3 as decoded; names longer than a file
	// system allows (255 on Linux) still decode, so the server can
	// answer NAMETOOLONG rather than GARBAGE_ARGS.
	MaxName = 4096
	// MaxPath bounds an nfspath3 (a symlink's text): Linux's PATH_MAX.
	MaxPath = 4096
	// MaxWriteData is the most data a WRITE may carry: the 1 MiB our
	// server advertises as wtmax, which also keeps a WRITE inside the
	// transport's record limit.
	MaxWriteData = 1 << 20
	// MaxReadData is the most data a READ reply may carry for our
	// client, whatever server it talks to.
	MaxReadData = 4 << 20
	// MaxMountPath is MNTPATHLEN; MaxMountName is MNTNAMLEN.
	MaxMountPath = 1024
	MaxMountName = 255
)
