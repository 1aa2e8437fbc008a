// Package nfsclient is an NFSv3 client over pkg/rpc. Calls may be issued
// from many goroutines at once and are pipelined on one connection, which
// is what the load generator and the concurrency tests need and what
// simpler Go clients do not do. Arguments and results are pkg/nfs3/wire's,
// the same codecs the server uses.
package nfsclient

import (
	"context"
	"fmt"

	"github.com/rwxnfs/rwxnfs/pkg/nfs3/wire"
	"github.com/rwxnfs/rwxnfs/pkg/rpc"
	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// Error is a non-OK nfsstat3 (or mountstat3 for Mount).
type Error struct {
	Status uint32
	Proc   string
}

func (e *Error) Error() string {
	if e.Proc == "MNT" {
		return fmt.Sprintf("mount MNT: mountstat3 %d", e.Status)
	}
	return fmt.Sprintf("nfs %s: %s", e.Proc, wire.Status(e.Status))
}

// Is lets errors.Is match on status alone.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Status == e.Status && t.Proc == ""
}

// Status returns a matchable error for a status, for errors.Is.
func Status(s wire.Status) error { return &Error{Status: uint32(s)} }

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

type encoder interface{ Encode(*xdr.Writer) }

type decoder interface{ Decode(*xdr.Reader) error }

// call makes an NFSv3 call and decodes its results into res.
func (c *Client) call(ctx context.Context, proc uint32, args encoder, res decoder) error {
	return c.callProg(ctx, wire.Program, wire.Version, proc, args, res)
}

func (c *Client) callProg(ctx context.Context, prog, vers, proc uint32, args encoder, res decoder) error {
	var enc func(*xdr.Writer)
	if args != nil {
		enc = args.Encode
	}
	b, err := c.RPC.Call(ctx, prog, vers, proc, enc)
	if err != nil {
		return err
	}
	if res == nil {
		return nil
	}
	return res.Decode(xdr.NewReader(b))
}

// failed turns a non-OK status into an *Error.
func failed(st wire.Status, proc uint32) error {
	if st == wire.OK {
		return nil
	}
	return &Error{Status: uint32(st), Proc: procNames[proc]}
}

// procNames are the procedures' names in errors.
var procNames = [wire.NumProcs]string{
	"NULL", "GETATTR", "SETATTR", "LOOKUP", "ACCESS", "READLINK", "READ", "WRITE",
	"CREATE", "MKDIR", "SYMLINK", "MKNOD", "REMOVE", "RMDIR", "RENAME", "LINK",
	"READDIR", "READDIR", "FSSTAT", "FSINFO", "PATHCONF", "COMMIT",
}

// Null calls NFS NULL.
func (c *Client) Null(ctx context.Context) error {
	return c.call(ctx, wire.ProcNull, nil, nil)
}

// Mount asks MOUNT v3 for the root handle of path.
func (c *Client) Mount(ctx context.Context, path string) ([]byte, error) {
	var res wire.MntRes
	if err := c.callProg(ctx, wire.MountProgram, wire.MountVersion, wire.MountProcMnt, &wire.DirPath{Path: path}, &res); err != nil {
		return nil, err
	}
	if res.Status != wire.MountOK {
		return nil, &Error{Status: uint32(res.Status), Proc: "MNT"}
	}
	return res.FH, nil
}

// Exports calls MOUNT EXPORT and returns each path with its groups.
func (c *Client) Exports(ctx context.Context) (map[string][]string, error) {
	var list wire.Exports
	if err := c.callProg(ctx, wire.MountProgram, wire.MountVersion, wire.MountProcExport, nil, &list); err != nil {
		return nil, err
	}
	out := make(map[string][]string, len(list))
	for _, e := range list {
		out[e.Dir] = e.Groups
	}
	return out, nil
}
