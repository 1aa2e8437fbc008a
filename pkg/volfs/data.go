package volfs

import (
	"context"

	"golang.org/x/sys/unix"

	"github.com/rwxnfs/rwxnfs/pkg/fscred"
	"github.com/rwxnfs/rwxnfs/pkg/vfs"
)

// maxOffset is the largest file offset.
const maxOffset = 1<<63 - 1

// Read implements vfs.FS: data through a descriptor kept open on the
// node, straight into buf. Rights are checked here from the mode bits
// (with the owner override, see mayRead).
func (fs *FS) Read(_ context.Context, c vfs.Caller, fh []byte, off uint64, buf []byte) (vfs.ReadResult, error) {
	var res vfs.ReadResult
	var st unix.Stat_t
	n, err := fs.node(&c, fh, &st, "READ")
	if err != nil {
		return res, err
	}
	defer fs.t.Release(n)
	res.Attr, res.HasAttr = attrOf(&st, n.Vol.FSID), true
	switch {
	case isDir(&st):
		return res, vfs.ErrIsDir
	case !isReg(&st):
		return res, vfs.ErrInval
	case !mayRead(&st, cred(&c, n)):
		return res, vfs.ErrAccess
	case off > maxOffset:
		return res, vfs.ErrInval
	}
	fd, err := n.IOFD(false)
	if err != nil {
		return res, fs.fail("READ", err)
	}
	for res.N < len(buf) {
		k, err := unix.Pread(fd, buf[res.N:], int64(off)+int64(res.N))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return res, fs.fail("READ", err)
		}
		if k == 0 {
			break
		}
		res.N += k
	}
	res.EOF = res.N < len(buf) || int64(off)+int64(res.N) >= st.Size
	return res, nil
}

// Write implements vfs.FS. A reply never claims more durability than is
// on disk: UNSTABLE data is in the page cache (a COMMIT makes it
// durable), DATA_SYNC and FILE_SYNC data is synced before the reply.
func (fs *FS) Write(_ context.Context, c vfs.Caller, fh []byte, off uint64, data []byte, stable vfs.Stability) (vfs.WriteResult, error) {
	var res vfs.WriteResult
	var pre unix.Stat_t
	n, err := fs.node(&c, fh, &pre, "WRITE")
	if err != nil {
		return res, err
	}
	defer fs.t.Release(n)
	before(&res.Wcc, &pre)
	id := cred(&c, n)
	switch {
	case n.Vol.Options.ReadOnly:
		err = vfs.ErrROFS
	case isDir(&pre):
		err = vfs.ErrIsDir
	case !isReg(&pre):
		err = vfs.ErrInval
	case !mayWrite(&pre, id):
		err = vfs.ErrAccess
	case off > maxOffset || off+uint64(len(data)) > maxOffset:
		err = vfs.ErrFBig
	}
	if err != nil {
		after(&res.Wcc, n)
		return res, err
	}
	fd, err := n.IOFD(true)
	if err != nil {
		after(&res.Wcc, n)
		return res, fs.fail("WRITE", err)
	}
	put := func() error {
		for done := 0; done < len(data); {
			k, err := unix.Pwrite(fd, data[done:], int64(off)+int64(done))
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return err
			}
			done += k
		}
		return nil
	}
	put = quotaWrite(n, fd, off, len(data), put)
	// Writing to a set-id file as a non-root caller must clear the set-id
	// bits, which the kernel does only for a writer without CAP_FSETID.
	if pre.Mode&(unix.S_ISUID|unix.S_ISGID) != 0 && !id.IsRoot() {
		err = fscred.Do(id, put)
	} else {
		err = put()
	}
	if err == nil {
		err = fs.syncData(fd, stable)
	}
	if err != nil {
		after(&res.Wcc, n)
		return res, fs.fail("WRITE", err)
	}
	var post unix.Stat_t
	if unix.Fstat(fd, &post) == nil {
		res.Wcc.After, res.Wcc.HasAfter = attrOf(&post, n.Vol.FSID), true
	}
	res.Count, res.Committed = uint32(len(data)), stable
	return res, nil
}

// Commit implements vfs.FS: the whole file is synced whatever range was
// asked for; that is always at least what was asked.
func (fs *FS) Commit(_ context.Context, c vfs.Caller, fh []byte) (vfs.Wcc, error) {
	var w vfs.Wcc
	var pre unix.Stat_t
	n, err := fs.node(&c, fh, &pre, "COMMIT")
	if err != nil {
		return w, err
	}
	defer fs.t.Release(n)
	before(&w, &pre)
	if !isReg(&pre) {
		w.After, w.HasAfter = attrOf(&pre, n.Vol.FSID), true
		return w, vfs.ErrInval
	}
	fd, err := n.IOFD(false)
	if err == nil {
		err = fs.syncData(fd, vfs.FileSync)
	}
	after(&w, n)
	return w, fs.fail("COMMIT", err)
}
