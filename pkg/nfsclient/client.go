// Package nfsclient is an NFSv3 client over pkg/rpc. Calls may be issued
// from many goroutines at once and are pipelined on one connection, which
// is what the load generator and the concurrency tests need and what
// simpler Go clients do not do.
package nfsclient

import (
	"context"
	"fmt"

	nfs "github.com/willscott/go-nfs"

	"github.com/rwxnfs/rwxnfs/pkg/rpc"
	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// Program numbers.
const (
	nfsProg   = 100003
	mountProg = 100005
)

// Error is a non-OK nfsstat3 (or mountstat3 for Mount).
type Error struct {
	Status uint32
	Proc   string
}

func (e *Error) Error() string {
	return fmt.Sprintf("nfs %s: %s", e.Proc, nfs.NFSStatus(e.Status).String())
}

// Is lets errors.Is match on status alone.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Status == e.Status && t.Proc == ""
}

// Status returns a matchable error for a status, for errors.Is.
func Status(s nfs.NFSStatus) error { return &Error{Status: uint32(s)} }

// Client talks NFSv3 and MOUNT to one server connection.
type Client struct {
	RPC *rpc.Client
}

// Dial connects to a server's NFS port (MOUNT is expected on the same
// port, as nfsd serves it).
func Dial(ctx context.Context, addr string) (*Client, error) {
	c, err := rpc.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	return &Client{RPC: c}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.RPC.Close() }

// SetCred sets the credential of later calls.
func (c *Client) SetCred(uid, gid uint32, groups ...uint32) {
	c.RPC.Cred = rpc.AuthSysCred{Machine: "nfsclient", UID: uid, GID: gid, GIDs: groups}.Opaque()
}

func (c *Client) call(ctx context.Context, proc uint32, args func(w *xdr.Writer)) (*xdr.Reader, error) {
	b, err := c.RPC.Call(ctx, nfsProg, 3, proc, args)
	if err != nil {
		return nil, err
	}
	return xdr.NewReader(b), nil
}

// Null calls NFS NULL.
func (c *Client) Null(ctx context.Context) error {
	_, err := c.RPC.Call(ctx, nfsProg, 3, 0, nil)
	return err
}

// Mount asks MOUNT v3 for the root handle of path.
func (c *Client) Mount(ctx context.Context, path string) ([]byte, error) {
	b, err := c.RPC.Call(ctx, mountProg, 3, 1, func(w *xdr.Writer) { w.String(path) })
	if err != nil {
		return nil, err
	}
	r := xdr.NewReader(b)
	if st := r.Uint32(); st != 0 {
		return nil, &Error{Status: st, Proc: "MNT"}
	}
	fh := r.Opaque(64)
	return fh, r.Err()
}

// Exports calls MOUNT EXPORT and returns each path with its groups.
func (c *Client) Exports(ctx context.Context) (map[string][]string, error) {
	b, err := c.RPC.Call(ctx, mountProg, 3, 5, nil)
	if err != nil {
		return nil, err
	}
	r := xdr.NewReader(b)
	out := make(map[string][]string)
	for r.Bool() {
		dir := r.String(1024)
		out[dir] = []string{}
		for r.Bool() {
			out[dir] = append(out[dir], r.String(1024))
		}
	}
	return out, r.Err()
}

// status reads an nfsstat3 and turns it into an error.
func status(r *xdr.Reader, proc string) error {
	st := r.Uint32()
	if r.Err() != nil {
		return r.Err()
	}
	if st != 0 {
		return &Error{Status: st, Proc: proc}
	}
	return nil
}
