package nfsd

import (
	"encoding/binary"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/rwxnfs/rwxnfs/internal/rpctest"
	"github.com/rwxnfs/rwxnfs/pkg/nfs3"
	"github.com/rwxnfs/rwxnfs/pkg/rpc"
	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// The whole daemon answers RPC-level errors for its NFS, MOUNT, NLM and
// portmapper programs as RFC 5531 says, on its NFS port and on the
// portmapper's, and a client hurling garbage and absurd records at it
// does not disturb a mounted client.
func TestDaemonRPCErrors(t *testing.T) {
	d := start(t, t.TempDir())
	c := dial(t, d, 0, 0)
	root := mount(t, c, "default")

	sys := rpc.AuthSysCred{Machine: "t", UID: 0, GID: 0}.Opaque()
	fhArgs := func(fh []byte) []byte { w := xdr.NewWriter(72); w.Opaque(fh); return w.Bytes() }
	for _, addr := range []string{d.Addr().String(), d.PortmapAddr().String()} {
		conn := rpctest.Dial(t, addr)
		nfsPort := addr == d.Addr().String()
		for _, tc := range []struct {
			name             string
			nfsOnly          bool
			prog, vers, proc uint32
			cred             rpc.OpaqueAuth
			args             []byte
			want             rpc.ReplyError
		}{
			{"NFS v2", true, nfs3.Program, 2, 0, sys, nil, rpc.ReplyError{Accept: rpc.ProgMismatch, Low: 3, Hi: 3}},
			{"NFS v4", true, nfs3.Program, 4, 0, sys, nil, rpc.ReplyError{Accept: rpc.ProgMismatch, Low: 3, Hi: 3}},
			{"MOUNT v4", true, nfs3.MountProgram, 4, 0, sys, nil, rpc.ReplyError{Accept: rpc.ProgMismatch, Low: 1, Hi: 3}},
			{"portmap v1", false, 100000, 1, 0, sys, nil, rpc.ReplyError{Accept: rpc.ProgMismatch, Low: 2, Hi: 4}},
			{"NFS proc 22", true, nfs3.Program, 3, 22, sys, nil, rpc.ReplyError{Accept: rpc.ProcUnavail}},
			{"MOUNT v1 MNT", true, nfs3.MountProgram, 1, 1, sys, nil, rpc.ReplyError{Accept: rpc.ProcUnavail}},
			{"GETATTR no handle", true, nfs3.Program, 3, 1, sys, nil, rpc.ReplyError{Accept: rpc.GarbageArgs}},
			{"GETATTR cut handle", true, nfs3.Program, 3, 1, sys, fhArgs(root)[:8], rpc.ReplyError{Accept: rpc.GarbageArgs}},
			{"READ cut", true, nfs3.Program, 3, 6, sys, append(fhArgs(root), 0, 0, 0, 0), rpc.ReplyError{Accept: rpc.GarbageArgs}},
			{"MNT path too long", true, nfs3.MountProgram, 3, 1, sys, binary.BigEndian.AppendUint32(nil, 5000), rpc.ReplyError{Accept: rpc.GarbageArgs}},
			{"unknown program", false, 0x3fffffff, 1, 0, sys, nil, rpc.ReplyError{Accept: rpc.ProgUnavail}},
			{"bad flavor", false, nfs3.Program, 3, 0, rpc.OpaqueAuth{Flavor: 6}, nil, rpc.ReplyError{Denied: true, Auth: rpc.AuthBadCred}},
			{"AUTH_SYS cut", false, nfs3.Program, 3, 1, rpc.OpaqueAuth{Flavor: rpc.AuthSys, Body: sys.Body[:8]}, fhArgs(root), rpc.ReplyError{Denied: true, Auth: rpc.AuthBadCred}},
		} {
			if tc.nfsOnly && !nfsPort {
				continue
			}
			conn.Send(rpctest.CallMsg(0x77, tc.prog, tc.vers, tc.proc, tc.cred, tc.args))
			xid, body, err := conn.Reply()
			var re *rpc.ReplyError
			if xid != 0x77 || !errors.As(err, &re) || *re != tc.want || len(body) != 0 {
				t.Errorf("%s on %s: xid %#x %v (%d bytes), want %+v", tc.name, addr, xid, err, len(body), tc.want)
			}
		}
		// RPC version 3.
		msg := rpctest.CallMsg(0x78, nfs3.Program, 3, 0, sys, nil)
		binary.BigEndian.PutUint32(msg[8:], 3)
		conn.Send(msg)
		_, _, err := conn.Reply()
		if re := (*rpc.ReplyError)(nil); !errors.As(err, &re) || !re.Mismatch || re.Low != 2 || re.Hi != 2 {
			t.Errorf("RPC v3 on %s: %v, want RPC_MISMATCH 2-2", addr, err)
		}
		// Absurd and garbage records end only the connection sending them.
		for _, junk := range [][]byte{{0xff, 0xff, 0xff, 0xff}, []byte("SSH-2.0-OpenSSH_9.2\r\n")} {
			bad, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			bad.SetDeadline(time.Now().Add(time.Minute))
			bad.Write(junk)
			var ne net.Error
			if n, err := bad.Read(make([]byte, 1)); err == nil || errors.As(err, &ne) && ne.Timeout() {
				t.Errorf("%q on %s: read %d bytes, %v; want the connection closed", junk, addr, n, err)
			}
			bad.Close()
		}
	}
	// The mounted client never noticed.
	if _, err := c.GetAttr(ctx(t), root); err != nil {
		t.Fatalf("GETATTR after the abuse: %v", err)
	}
}
