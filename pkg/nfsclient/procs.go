package nfsclient

import (
	"context"

	"github.com/rwxnfs/rwxnfs/pkg/nfs3/wire"
)

// GetAttr returns a file's attributes.
func (c *Client) GetAttr(ctx context.Context, fh []byte) (Attr, error) {
	var res wire.GetattrRes
	if err := c.call(ctx, wire.ProcGetattr, &wire.FHArgs{FH: fh}, &res); err != nil {
		return Attr{}, err
	}
	if err := failed(res.Status, wire.ProcGetattr); err != nil {
		return Attr{}, err
	}
	return attrOf(&res.Attr), nil
}

// SetAttr changes attributes.
func (c *Client) SetAttr(ctx context.Context, fh []byte, s SetAttr) (*Attr, error) {
	var res wire.WccRes
	if err := c.call(ctx, wire.ProcSetattr, &wire.SetattrArgs{FH: fh, Attr: s.sattr()}, &res); err != nil {
		return nil, err
	}
	if err := failed(res.Status, wire.ProcSetattr); err != nil {
		return nil, err
	}
	return postOp(&res.Wcc.After), nil
}

// Lookup returns the handle and attributes of name in dir.
func (c *Client) Lookup(ctx context.Context, dir []byte, name string) ([]byte, *Attr, error) {
	var res wire.LookupRes
	if err := c.call(ctx, wire.ProcLookup, &wire.DiropArgs{Dir: dir, Name: name}, &res); err != nil {
		return nil, nil, err
	}
	if err := failed(res.Status, wire.ProcLookup); err != nil {
		return nil, nil, err
	}
	return res.FH, postOp(&res.Attr), nil
}

// Access asks which of the rights in want the caller has.
func (c *Client) Access(ctx context.Context, fh []byte, want uint32) (uint32, error) {
	var res wire.AccessRes
	if err := c.call(ctx, wire.ProcAccess, &wire.AccessArgs{FH: fh, Access: want}, &res); err != nil {
		return 0, err
	}
	if err := failed(res.Status, wire.ProcAccess); err != nil {
		return 0, err
	}
	return res.Access, nil
}

// ReadLink returns a symlink's text.
func (c *Client) ReadLink(ctx context.Context, fh []byte) (string, error) {
	var res wire.ReadlinkRes
	if err := c.call(ctx, wire.ProcReadlink, &wire.FHArgs{FH: fh}, &res); err != nil {
		return "", err
	}
	if err := failed(res.Status, wire.ProcReadlink); err != nil {
		return "", err
	}
	return res.Path, nil
}

// Read reads up to count bytes at off.
func (c *Client) Read(ctx context.Context, fh []byte, off uint64, count uint32) ([]byte, bool, error) {
	var res wire.ReadRes
	if err := c.call(ctx, wire.ProcRead, &wire.ReadArgs{FH: fh, Offset: off, Count: count}, &res); err != nil {
		return nil, false, err
	}
	if err := failed(res.Status, wire.ProcRead); err != nil {
		return nil, false, err
	}
	return res.Data, res.EOF, nil
}

// Stability levels for Write.
const (
	Unstable = wire.Unstable
	DataSync = wire.DataSync
	FileSync = wire.FileSync
)

// WriteResult is what WRITE reports.
type WriteResult struct {
	Count     uint32
	Committed uint32
	Verifier  [8]byte
	Attr      *Attr
}

// Write writes data at off.
func (c *Client) Write(ctx context.Context, fh []byte, off uint64, data []byte, stable uint32) (WriteResult, error) {
	var res wire.WriteRes
	args := wire.WriteArgs{FH: fh, Offset: off, Count: uint32(len(data)), Stable: stable, Data: data}
	if err := c.call(ctx, wire.ProcWrite, &args, &res); err != nil {
		return WriteResult{}, err
	}
	if err := failed(res.Status, wire.ProcWrite); err != nil {
		return WriteResult{}, err
	}
	return WriteResult{Count: res.Count, Committed: res.Committed, Verifier: res.Verf, Attr: postOp(&res.Wcc.After)}, nil
}

// Commit makes unstable writes durable and returns the verifier.
func (c *Client) Commit(ctx context.Context, fh []byte) ([8]byte, error) {
	var res wire.CommitRes
	if err := c.call(ctx, wire.ProcCommit, &wire.CommitArgs{FH: fh}, &res); err != nil {
		return [8]byte{}, err
	}
	if err := failed(res.Status, wire.ProcCommit); err != nil {
		return [8]byte{}, err
	}
	return res.Verf, nil
}

// Create modes.
const (
	Unchecked = wire.Unchecked
	Guarded   = wire.Guarded
	Exclusive = wire.Exclusive
)

// created makes a CREATE, MKDIR, SYMLINK or MKNOD call.
func (c *Client) created(ctx context.Context, proc uint32, args encoder) ([]byte, *Attr, error) {
	var res wire.CreatedRes
	if err := c.call(ctx, proc, args, &res); err != nil {
		return nil, nil, err
	}
	if err := failed(res.Status, proc); err != nil {
		return nil, nil, err
	}
	return res.FH.FH, postOp(&res.Attr), nil
}

// Create makes a regular file (UNCHECKED or GUARDED) with attributes s.
func (c *Client) Create(ctx context.Context, dir []byte, name string, how uint32, s SetAttr) ([]byte, *Attr, error) {
	return c.created(ctx, wire.ProcCreate, &wire.CreateArgs{Where: wire.DiropArgs{Dir: dir, Name: name}, Mode: how, Attr: s.sattr()})
}

// CreateExclusive makes a file with an exclusive-create verifier.
func (c *Client) CreateExclusive(ctx context.Context, dir []byte, name string, verf [8]byte) ([]byte, *Attr, error) {
	return c.created(ctx, wire.ProcCreate, &wire.CreateArgs{Where: wire.DiropArgs{Dir: dir, Name: name}, Mode: Exclusive, Verf: verf})
}

// Mkdir makes a directory.
func (c *Client) Mkdir(ctx context.Context, dir []byte, name string, s SetAttr) ([]byte, *Attr, error) {
	return c.created(ctx, wire.ProcMkdir, &wire.MkdirArgs{Where: wire.DiropArgs{Dir: dir, Name: name}, Attr: s.sattr()})
}

// Symlink makes a symbolic link.
func (c *Client) Symlink(ctx context.Context, dir []byte, name, target string) ([]byte, *Attr, error) {
	return c.created(ctx, wire.ProcSymlink, &wire.SymlinkArgs{Where: wire.DiropArgs{Dir: dir, Name: name}, Target: target})
}

// MknodFifo makes a FIFO.
func (c *Client) MknodFifo(ctx context.Context, dir []byte, name string, s SetAttr) ([]byte, *Attr, error) {
	return c.created(ctx, wire.ProcMknod, &wire.MknodArgs{Where: wire.DiropArgs{Dir: dir, Name: name}, Type: wire.TypeFifo, Attr: s.sattr()})
}

// MknodDevice makes a character (chr) or block device node major:minor.
func (c *Client) MknodDevice(ctx context.Context, dir []byte, name string, chr bool, major, minor uint32, s SetAttr) ([]byte, *Attr, error) {
	t := wire.TypeBlk
	if chr {
		t = wire.TypeChr
	}
	return c.created(ctx, wire.ProcMknod, &wire.MknodArgs{Where: wire.DiropArgs{Dir: dir, Name: name}, Type: t, Attr: s.sattr(), Spec: wire.SpecData{Major: major, Minor: minor}})
}

// wccCall makes a call whose results are a status and wcc data
// (REMOVE, RMDIR, RENAME, LINK), and reports the status.
func (c *Client) wccCall(ctx context.Context, proc uint32, args encoder) error {
	var st wire.Status
	var err error
	switch proc {
	case wire.ProcRename:
		var res wire.RenameRes
		err, st = c.call(ctx, proc, args, &res), res.Status
	case wire.ProcLink:
		var res wire.LinkRes
		err, st = c.call(ctx, proc, args, &res), res.Status
	default:
		var res wire.WccRes
		err, st = c.call(ctx, proc, args, &res), res.Status
	}
	if err != nil {
		return err
	}
	return failed(st, proc)
}

// Remove unlinks a file.
func (c *Client) Remove(ctx context.Context, dir []byte, name string) error {
	return c.wccCall(ctx, wire.ProcRemove, &wire.DiropArgs{Dir: dir, Name: name})
}

// Rmdir removes a directory.
func (c *Client) Rmdir(ctx context.Context, dir []byte, name string) error {
	return c.wccCall(ctx, wire.ProcRmdir, &wire.DiropArgs{Dir: dir, Name: name})
}

// Rename moves an entry.
func (c *Client) Rename(ctx context.Context, fromDir []byte, from string, toDir []byte, to string) error {
	return c.wccCall(ctx, wire.ProcRename, &wire.RenameArgs{From: wire.DiropArgs{Dir: fromDir, Name: from}, To: wire.DiropArgs{Dir: toDir, Name: to}})
}

// Link makes a hard link to file in dir.
func (c *Client) Link(ctx context.Context, file, dir []byte, name string) error {
	return c.wccCall(ctx, wire.ProcLink, &wire.LinkArgs{FH: file, Link: wire.DiropArgs{Dir: dir, Name: name}})
}

// Entry is a directory entry.
type Entry struct {
	Name   string
	FileID uint64
	Cookie uint64
	Attr   *Attr
	Handle []byte
}

// ReadDirPage is one READDIR(PLUS) call.
func (c *Client) ReadDirPage(ctx context.Context, dir []byte, cookie uint64, plus bool, count uint32) ([]Entry, bool, error) {
	proc := uint32(wire.ProcReaddir)
	args := wire.ReaddirArgs{Plus: plus, Dir: dir, Cookie: cookie, Count: count}
	if plus {
		proc = wire.ProcReaddirplus
		args.DirCount = count / 4
	}
	res := wire.ReaddirRes{Plus: plus}
	if err := c.call(ctx, proc, &args, &res); err != nil {
		return nil, false, err
	}
	if err := failed(res.Status, proc); err != nil {
		return nil, false, err
	}
	var out []Entry
	for i := range res.Entries {
		e := &res.Entries[i]
		ent := Entry{Name: string(e.Name), FileID: e.FileID, Cookie: e.Cookie}
		if plus {
			ent.Attr = postOp(&e.Attr)
			if e.FH.Set {
				ent.Handle = e.FH.FH
			}
		}
		out = append(out, ent)
	}
	return out, res.EOF, nil
}

// ReadDir lists a whole directory, page by page.
func (c *Client) ReadDir(ctx context.Context, dir []byte, plus bool) ([]Entry, error) {
	var all []Entry
	var cookie uint64
	for {
		page, eof, err := c.ReadDirPage(ctx, dir, cookie, plus, 32<<10)
		if err != nil {
			return all, err
		}
		all = append(all, page...)
		if eof || len(page) == 0 {
			return all, nil
		}
		cookie = page[len(page)-1].Cookie
	}
}

// FSStat is what FSSTAT reports.
type FSStat struct {
	TotalBytes, FreeBytes, AvailBytes uint64
	TotalFiles, FreeFiles, AvailFiles uint64
}

// FSStat returns space figures.
func (c *Client) FSStat(ctx context.Context, fh []byte) (FSStat, error) {
	var res wire.FsstatRes
	if err := c.call(ctx, wire.ProcFsstat, &wire.FHArgs{FH: fh}, &res); err != nil {
		return FSStat{}, err
	}
	if err := failed(res.Status, wire.ProcFsstat); err != nil {
		return FSStat{}, err
	}
	return FSStat{res.TotalBytes, res.FreeBytes, res.AvailBytes, res.TotalFiles, res.FreeFiles, res.AvailFiles}, nil
}

// FSInfo returns the server's maximum read and write sizes.
func (c *Client) FSInfo(ctx context.Context, fh []byte) (rtmax, wtmax uint32, err error) {
	var res wire.FsinfoRes
	if err := c.call(ctx, wire.ProcFsinfo, &wire.FHArgs{FH: fh}, &res); err != nil {
		return 0, 0, err
	}
	if err := failed(res.Status, wire.ProcFsinfo); err != nil {
		return 0, 0, err
	}
	return res.Rtmax, res.Wtmax, nil
}
