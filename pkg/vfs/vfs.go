// Package vfs is the contract between the file protocols (NFSv3 and MOUNT
// today; NLM asks it whether a handle may be locked) and the
// file-operation layer under them (pkg/volfs).
//
// Each method of FS is one whole operation: it resolves the handles it is
// given, applies the export's rules (allow-list, identity squashing,
// read-only), checks permissions, reserves and charges quota, runs the
// system calls as the caller, makes the change durable as the protocol
// promises, and reports attributes before and after. A protocol front end
// is then decode, one call, encode; it never touches the file system, and
// every front end gets the same rules.
//
// Failures are Error values (Code gives the one of any error), which each
// protocol maps to its own statuses in one place. A result carries
// whatever the operation learnt before it failed (a directory's
// attributes, wcc data), because NFS replies report them on failure too.
package vfs

import (
	"context"
	"errors"
	"net/netip"
)

// Caller is who asks and from where.
type Caller struct {
	// Addr is the client's address, checked against allow-lists.
	Addr netip.Addr
	// Unix says the call carried a Unix identity (AUTH_SYS). Without one
	// the caller is the export's anonymous user.
	Unix     bool
	UID, GID uint32
	Groups   []uint32
}

// FileType is a file's type; the values are NFSv3's ftype3.
type FileType uint32

// File types.
const (
	TypeReg  FileType = 1
	TypeDir  FileType = 2
	TypeBlk  FileType = 3
	TypeChr  FileType = 4
	TypeLnk  FileType = 5
	TypeSock FileType = 6
	TypeFifo FileType = 7
)

// Time is a file time.
type Time struct{ Sec, Nsec int64 }

// Attr is a file's attributes.
type Attr struct {
	Type                FileType
	Mode                uint32 // permission and set-id bits
	Nlink               uint32
	UID, GID            uint32
	Size, Used          uint64
	Major, Minor        uint32 // a device's numbers
	FSID                uint64 // the volume's: each volume is its own file system
	FileID              uint64
	Atime, Mtime, Ctime Time
}

// PreAttr is what weak cache consistency reports of an object before a
// change.
type PreAttr struct {
	Size         uint64
	Mtime, Ctime Time
}

// Wcc is what a change did to an object: its attributes before (if
// HasBefore) and after (if HasAfter).
type Wcc struct {
	Before    PreAttr
	After     Attr
	HasBefore bool
	HasAfter  bool
}

// TimeHow says how SetAttr changes a time.
type TimeHow uint8

// Ways to set a time.
const (
	KeepTime   TimeHow = iota // leave it
	ServerTime                // the server's clock
	ClientTime                // SetTime.Time
)

// SetTime is how to change one time.
type SetTime struct {
	How  TimeHow
	Time Time
}

// SetAttr is a change of attributes; only the fields marked set change.
type SetAttr struct {
	SetMode, SetUID, SetGID, SetSize bool
	Mode, UID, GID                   uint32
	Size                             uint64
	Atime, Mtime                     SetTime
}

// Empty reports whether s changes nothing.
func (s *SetAttr) Empty() bool {
	return !s.SetMode && !s.SetUID && !s.SetGID && !s.SetSize && s.Atime.How == KeepTime && s.Mtime.How == KeepTime
}

// Access rights, as ACCESS reports them (NFSv3's bits).
const (
	AccessRead    = 0x01
	AccessLookup  = 0x02
	AccessModify  = 0x04
	AccessExtend  = 0x08
	AccessDelete  = 0x10
	AccessExecute = 0x20
)

// Stability is how durable a write is before it is acknowledged.
type Stability uint32

// Stability levels (NFSv3's stable_how).
const (
	Unstable Stability = 0 // in the server's memory; COMMIT makes it durable
	DataSync Stability = 1 // data (and what is needed to read it back) on disk
	FileSync Stability = 2 // data and all metadata on disk
)

// CreateMode is how Create treats an existing name.
type CreateMode uint8

// Create modes (NFSv3's createhow3).
const (
	Unchecked CreateMode = iota // an existing regular file is used (only its size may be set)
	Guarded                     // an existing name is ErrExist
	Exclusive                   // create once: a retransmission with the same verifier succeeds
)

// Limits of names and paths.
const (
	MaxName = 255  // bytes in one name
	MaxPath = 4096 // bytes of a symlink's text
)

// LookupResult is what Lookup found: the entry's handle and attributes,
// and the directory's attributes (also on failure, if known).
type LookupResult struct {
	FH     []byte
	Attr   Attr
	Dir    Attr
	HasDir bool
}

// AttrResult is an object's attributes, if known.
type AttrResult struct {
	Attr    Attr
	HasAttr bool
}

// ReadResult is what Read did: N bytes read, EOF if they reach the end of
// the file, and the file's attributes (also on failure, if known).
type ReadResult struct {
	AttrResult
	N   int
	EOF bool
}

// WriteResult is what Write did: Count bytes written at the stability
// Committed, and the file's wcc data (also on failure).
type WriteResult struct {
	Wcc       Wcc
	Count     uint32
	Committed Stability
}

// CreateArgs says what to create.
type CreateArgs struct {
	Mode CreateMode
	Attr SetAttr // Unchecked and Guarded
	Verf [8]byte // Exclusive
}

// Created is what a create made: its handle and attributes (Found: both
// are known; an object made but not found again is still success), and
// the directory's wcc data (also on failure).
type Created struct {
	FH    []byte
	Attr  Attr
	Found bool
	Dir   Wcc
}

// RenameResult is the wcc data of both directories of a rename.
type RenameResult struct{ From, To Wcc }

// LinkResult is the file's attributes after a link and the directory's
// wcc data.
type LinkResult struct {
	File AttrResult
	Dir  Wcc
}

// ReadDirArgs says where a listing starts (0 or an entry's Cookie), and
// whether entries carry attributes and handles (Plus). SizeHint is the
// size of the reply the entries go into, for sizing reads of the
// directory.
type ReadDirArgs struct {
	Cookie   uint64
	Plus     bool
	SizeHint int
}

// DirEntry is one directory entry. Cookie resumes a listing after it.
// With Plus, HasAttr and FH (nil if unknown) describe it. Name is the
// listing's own buffer, valid only until the callback returns: a listing
// hands over thousands of entries, and a string for each would be garbage
// for the collector.
type DirEntry struct {
	Name    []byte
	FileID  uint64
	Cookie  uint64
	Attr    Attr
	HasAttr bool
	FH      []byte
}

// ReadDirResult is the directory's attributes (also on failure, if
// known) and whether the listing reached its end.
type ReadDirResult struct {
	Dir AttrResult
	EOF bool
}

// FSStat is space and inodes; a volume with limits reports its limits.
type FSStat struct {
	AttrResult
	TotalBytes, FreeBytes, AvailBytes uint64
	TotalFiles, FreeFiles, AvailFiles uint64
}

// Export is an exported path and the clients allowed to mount it (empty:
// any).
type Export struct {
	Path    string
	Clients []string
}

// FS is the file-operation layer. Handles are the opaque, persistent ones
// it mints (at most 64 bytes); names are single path components.
type FS interface {
	Getattr(ctx context.Context, c Caller, fh []byte) (Attr, error)
	// Setattr changes attributes; with check, only if the object's ctime
	// is still guard (else ErrNotSync).
	Setattr(ctx context.Context, c Caller, fh []byte, s SetAttr, check bool, guard Time) (Wcc, error)
	Lookup(ctx context.Context, c Caller, dir []byte, name string) (LookupResult, error)
	// Access returns which of the rights in want the caller has.
	Access(ctx context.Context, c Caller, fh []byte, want uint32) (AttrResult, uint32, error)
	Readlink(ctx context.Context, c Caller, fh []byte) (AttrResult, string, error)
	// Read reads into buf from off.
	Read(ctx context.Context, c Caller, fh []byte, off uint64, buf []byte) (ReadResult, error)
	// Write writes data at off, durable as stable asks before it returns.
	Write(ctx context.Context, c Caller, fh []byte, off uint64, data []byte, stable Stability) (WriteResult, error)
	// Commit makes earlier unstable writes to the file durable.
	Commit(ctx context.Context, c Caller, fh []byte) (Wcc, error)
	Create(ctx context.Context, c Caller, dir []byte, name string, how CreateArgs) (Created, error)
	Mkdir(ctx context.Context, c Caller, dir []byte, name string, s SetAttr) (Created, error)
	Symlink(ctx context.Context, c Caller, dir []byte, name, target string, s SetAttr) (Created, error)
	// Mknod makes a FIFO, socket or (for an unsquashed root caller)
	// device node; other types are ErrBadType.
	Mknod(ctx context.Context, c Caller, dir []byte, name string, t FileType, s SetAttr, major, minor uint32) (Created, error)
	Remove(ctx context.Context, c Caller, dir []byte, name string) (Wcc, error)
	Rmdir(ctx context.Context, c Caller, dir []byte, name string) (Wcc, error)
	Rename(ctx context.Context, c Caller, fromDir []byte, fromName string, toDir []byte, toName string) (RenameResult, error)
	Link(ctx context.Context, c Caller, file, dir []byte, name string) (LinkResult, error)
	// ReadDir lists a directory from args.Cookie, handing each entry to
	// fn until fn returns false (the entry it refused is not consumed:
	// the next listing resumes at it) or the directory ends.
	ReadDir(ctx context.Context, c Caller, dir []byte, args ReadDirArgs, fn func(*DirEntry) bool) (ReadDirResult, error)
	FSStat(ctx context.Context, c Caller, fh []byte) (FSStat, error)

	// Mount returns the handle of an exported path (or a directory below
	// one), for a client allowed to mount it.
	Mount(ctx context.Context, c Caller, path string) ([]byte, error)
	// Exports lists what may be mounted.
	Exports() []Export
	// Volume checks that a handle names a file the caller's address may
	// use (for a lock on it) and returns the file's volume.
	Volume(ctx context.Context, c Caller, fh []byte) (string, error)
}

// Error is what went wrong, in terms every file protocol can map.
type Error uint8

// Errors.
const (
	ErrPerm        Error = iota + 1 // not the owner, or not allowed for this caller at all
	ErrNoEnt                        // no such name
	ErrIO                           // an I/O error, or one with no better name
	ErrAccess                       // permission denied (mode bits, allow-list)
	ErrExist                        // the name exists
	ErrXDev                         // across volumes
	ErrNotDir                       // not a directory
	ErrIsDir                        // a directory
	ErrInval                        // an invalid argument for this object
	ErrFBig                         // past the largest file size
	ErrNoSpace                      // the backing file system is full
	ErrROFS                         // the volume is read-only
	ErrMLink                        // too many links
	ErrNameTooLong                  // a name longer than MaxName
	ErrNotEmpty                     // a directory that is not empty
	ErrDQuot                        // over the volume's quota
	ErrStale                        // the handle's file or volume is gone
	ErrBadHandle                    // not a handle this server made
	ErrNotSync                      // a guarded SETATTR whose guard did not match
	ErrBadCookie                    // a listing cannot resume at this cookie
	ErrNotSupp                      // not supported on this object
	ErrBadType                      // a file type that cannot be made
	ErrFault                        // a server fault; logged where it happened
)

var errorText = [...]string{
	ErrPerm: "operation not permitted", ErrNoEnt: "no such file or directory", ErrIO: "I/O error",
	ErrAccess: "permission denied", ErrExist: "file exists", ErrXDev: "cross-volume link or rename",
	ErrNotDir: "not a directory", ErrIsDir: "is a directory", ErrInval: "invalid argument",
	ErrFBig: "file too large", ErrNoSpace: "no space left on device", ErrROFS: "read-only volume",
	ErrMLink: "too many links", ErrNameTooLong: "file name too long", ErrNotEmpty: "directory not empty",
	ErrDQuot: "volume quota exceeded", ErrStale: "stale file handle", ErrBadHandle: "bad file handle",
	ErrNotSync: "attributes changed since the guard", ErrBadCookie: "bad directory cookie",
	ErrNotSupp: "operation not supported", ErrBadType: "file type not supported", ErrFault: "server fault",
}

func (e Error) Error() string {
	if int(e) < len(errorText) && errorText[e] != "" {
		return "vfs: " + errorText[e]
	}
	return "vfs: error"
}

// Code returns the Error that err is or wraps; any other non-nil error is
// ErrFault.
func Code(err error) Error {
	if err == nil {
		return 0
	}
	if e, ok := err.(Error); ok {
		return e
	}
	var e Error
	if errors.As(err, &e) {
		return e
	}
	return ErrFault
}
