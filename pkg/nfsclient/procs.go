package nfsclient

import (
	"context"

	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// GetAttr returns a file's attributes.
func (c *Client) GetAttr(ctx context.Context, fh []byte) (Attr, error) {
	r, err := c.call(ctx, 1, func(w *xdr.Writer) { w.Opaque(fh) })
	if err != nil {
		return Attr{}, err
	}
	if err := status(r, "GETATTR"); err != nil {
		return Attr{}, err
	}
	a := readAttr(r)
	return a, r.Err()
}

// SetAttr changes attributes.
func (c *Client) SetAttr(ctx context.Context, fh []byte, s SetAttr) (*Attr, error) {
	r, err := c.call(ctx, 2, func(w *xdr.Writer) {
		w.Opaque(fh)
		s.write(w)
		w.Bool(false)
	})
	if err != nil {
		return nil, err
	}
	if err := status(r, "SETATTR"); err != nil {
		return nil, err
	}
	a := skipWcc(r)
	return a, r.Err()
}

// Lookup returns the handle and attributes of name in dir.
func (c *Client) Lookup(ctx context.Context, dir []byte, name string) ([]byte, *Attr, error) {
	r, err := c.call(ctx, 3, func(w *xdr.Writer) { w.Opaque(dir); w.String(name) })
	if err != nil {
		return nil, nil, err
	}
	if err := status(r, "LOOKUP"); err != nil {
		return nil, nil, err
	}
	fh := r.Opaque(64)
	a := readPostOp(r)
	readPostOp(r)
	return fh, a, r.Err()
}

// Access asks which of the rights in want the caller has.
func (c *Client) Access(ctx context.Context, fh []byte, want uint32) (uint32, error) {
	r, err := c.call(ctx, 4, func(w *xdr.Writer) { w.Opaque(fh); w.Uint32(want) })
	if err != nil {
		return 0, err
	}
	if err := status(r, "ACCESS"); err != nil {
		return 0, err
	}
	readPostOp(r)
	got := r.Uint32()
	return got, r.Err()
}

// ReadLink returns a symlink's text.
func (c *Client) ReadLink(ctx context.Context, fh []byte) (string, error) {
	r, err := c.call(ctx, 5, func(w *xdr.Writer) { w.Opaque(fh) })
	if err != nil {
		return "", err
	}
	if err := status(r, "READLINK"); err != nil {
		return "", err
	}
	readPostOp(r)
	s := r.String(4096)
	return s, r.Err()
}

// Read reads up to count bytes at off.
func (c *Client) Read(ctx context.Context, fh []byte, off uint64, count uint32) ([]byte, bool, error) {
	r, err := c.call(ctx, 6, func(w *xdr.Writer) { w.Opaque(fh); w.Uint64(off); w.Uint32(count) })
	if err != nil {
		return nil, false, err
	}
	if err := status(r, "READ"); err != nil {
		return nil, false, err
	}
	readPostOp(r)
	r.Uint32()
	eof := r.Bool()
	data := r.Opaque(1 << 22)
	return data, eof, r.Err()
}

// Stability levels for Write.
const (
	Unstable = 0
	DataSync = 1
	FileSync = 2
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
	var res WriteResult
	r, err := c.call(ctx, 7, func(w *xdr.Writer) {
		w.Opaque(fh)
		w.Uint64(off)
		w.Uint32(uint32(len(data)))
		w.Uint32(stable)
		w.Opaque(data)
	})
	if err != nil {
		return res, err
	}
	if err := status(r, "WRITE"); err != nil {
		return res, err
	}
	res.Attr = skipWcc(r)
	res.Count = r.Uint32()
	res.Committed = r.Uint32()
	copy(res.Verifier[:], r.FixedOpaque(8))
	return res, r.Err()
}

// Commit makes unstable writes durable and returns the verifier.
func (c *Client) Commit(ctx context.Context, fh []byte) ([8]byte, error) {
	var v [8]byte
	r, err := c.call(ctx, 21, func(w *xdr.Writer) { w.Opaque(fh); w.Uint64(0); w.Uint32(0) })
	if err != nil {
		return v, err
	}
	if err := status(r, "COMMIT"); err != nil {
		return v, err
	}
	skipWcc(r)
	copy(v[:], r.FixedOpaque(8))
	return v, r.Err()
}

// Create modes.
const (
	Unchecked = 0
	Guarded   = 1
	Exclusive = 2
)

func (c *Client) created(r *xdr.Reader, err error, proc string) ([]byte, *Attr, error) {
	if err != nil {
		return nil, nil, err
	}
	if err := status(r, proc); err != nil {
		return nil, nil, err
	}
	var fh []byte
	if r.Bool() {
		fh = r.Opaque(64)
	}
	a := readPostOp(r)
	skipWcc(r)
	return fh, a, r.Err()
}

// Create makes a regular file (UNCHECKED or GUARDED) with attributes s.
func (c *Client) Create(ctx context.Context, dir []byte, name string, how uint32, s SetAttr) ([]byte, *Attr, error) {
	r, err := c.call(ctx, 8, func(w *xdr.Writer) {
		w.Opaque(dir)
		w.String(name)
		w.Uint32(how)
		s.write(w)
	})
	return c.created(r, err, "CREATE")
}

// CreateExclusive makes a file with an exclusive-create verifier.
func (c *Client) CreateExclusive(ctx context.Context, dir []byte, name string, verf [8]byte) ([]byte, *Attr, error) {
	r, err := c.call(ctx, 8, func(w *xdr.Writer) {
		w.Opaque(dir)
		w.String(name)
		w.Uint32(Exclusive)
		w.FixedOpaque(verf[:])
	})
	return c.created(r, err, "CREATE")
}

// Mkdir makes a directory.
func (c *Client) Mkdir(ctx context.Context, dir []byte, name string, s SetAttr) ([]byte, *Attr, error) {
	r, err := c.call(ctx, 9, func(w *xdr.Writer) { w.Opaque(dir); w.String(name); s.write(w) })
	return c.created(r, err, "MKDIR")
}

// Symlink makes a symbolic link.
func (c *Client) Symlink(ctx context.Context, dir []byte, name, target string) ([]byte, *Attr, error) {
	r, err := c.call(ctx, 10, func(w *xdr.Writer) {
		w.Opaque(dir)
		w.String(name)
		SetAttr{}.write(w)
		w.String(target)
	})
	return c.created(r, err, "SYMLINK")
}

// MknodFifo makes a FIFO.
func (c *Client) MknodFifo(ctx context.Context, dir []byte, name string, s SetAttr) ([]byte, *Attr, error) {
	r, err := c.call(ctx, 11, func(w *xdr.Writer) { w.Opaque(dir); w.String(name); w.Uint32(TypeFifo); s.write(w) })
	return c.created(r, err, "MKNOD")
}

func (c *Client) dirop(ctx context.Context, proc uint32, name string, args func(w *xdr.Writer)) error {
	r, err := c.call(ctx, proc, args)
	if err != nil {
		return err
	}
	return status(r, name)
}

// Remove unlinks a file.
func (c *Client) Remove(ctx context.Context, dir []byte, name string) error {
	return c.dirop(ctx, 12, "REMOVE", func(w *xdr.Writer) { w.Opaque(dir); w.String(name) })
}

// Rmdir removes a directory.
func (c *Client) Rmdir(ctx context.Context, dir []byte, name string) error {
	return c.dirop(ctx, 13, "RMDIR", func(w *xdr.Writer) { w.Opaque(dir); w.String(name) })
}

// Rename moves an entry.
func (c *Client) Rename(ctx context.Context, fromDir []byte, from string, toDir []byte, to string) error {
	return c.dirop(ctx, 14, "RENAME", func(w *xdr.Writer) {
		w.Opaque(fromDir)
		w.String(from)
		w.Opaque(toDir)
		w.String(to)
	})
}

// Link makes a hard link to file in dir.
func (c *Client) Link(ctx context.Context, file, dir []byte, name string) error {
	return c.dirop(ctx, 15, "LINK", func(w *xdr.Writer) { w.Opaque(file); w.Opaque(dir); w.String(name) })
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
	proc := uint32(16)
	if plus {
		proc = 17
	}
	r, err := c.call(ctx, proc, func(w *xdr.Writer) {
		w.Opaque(dir)
		w.Uint64(cookie)
		w.Uint64(0)
		if plus {
			w.Uint32(count / 4)
		}
		w.Uint32(count)
	})
	if err != nil {
		return nil, false, err
	}
	if err := status(r, "READDIR"); err != nil {
		return nil, false, err
	}
	readPostOp(r)
	r.Uint64()
	var out []Entry
	for r.Bool() {
		var e Entry
		e.FileID = r.Uint64()
		e.Name = r.String(255)
		e.Cookie = r.Uint64()
		if plus {
			e.Attr = readPostOp(r)
			if r.Bool() {
				e.Handle = r.Opaque(64)
			}
		}
		out = append(out, e)
		if r.Err() != nil {
			break
		}
	}
	eof := r.Bool()
	return out, eof, r.Err()
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
	var s FSStat
	r, err := c.call(ctx, 18, func(w *xdr.Writer) { w.Opaque(fh) })
	if err != nil {
		return s, err
	}
	if err := status(r, "FSSTAT"); err != nil {
		return s, err
	}
	readPostOp(r)
	s.TotalBytes, s.FreeBytes, s.AvailBytes = r.Uint64(), r.Uint64(), r.Uint64()
	s.TotalFiles, s.FreeFiles, s.AvailFiles = r.Uint64(), r.Uint64(), r.Uint64()
	return s, r.Err()
}

// FSInfo returns the server's maximum read and write sizes.
func (c *Client) FSInfo(ctx context.Context, fh []byte) (rtmax, wtmax uint32, err error) {
	r, err := c.call(ctx, 19, func(w *xdr.Writer) { w.Opaque(fh) })
	if err != nil {
		return 0, 0, err
	}
	if err := status(r, "FSINFO"); err != nil {
		return 0, 0, err
	}
	readPostOp(r)
	rtmax = r.Uint32()
	r.Uint32()
	r.Uint32()
	wtmax = r.Uint32()
	return rtmax, wtmax, r.Err()
}
