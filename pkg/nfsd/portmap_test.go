package nfsd

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/rwxnfs/rwxnfs/internal/rpctest"
	"github.com/rwxnfs/rwxnfs/pkg/nfs3"
	"github.com/rwxnfs/rwxnfs/pkg/portmap"
	"github.com/rwxnfs/rwxnfs/pkg/rpc"
	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// The portmapper answers on the addresses it is given (TCP and UDP) and,
// over TCP, on the NFS port; nowhere else, and in particular not over UDP
// on the NFS port, where its replies would not be rate-limited like the
// portmapper's own.
func TestPortmapperAnswersOnlyWhereGiven(t *testing.T) {
	d, err := Start(Config{
		Root:          t.TempDir(),
		Listen:        "127.0.0.1:0",
		PortmapListen: "127.0.0.1:0, 127.0.0.7:0",
		DefaultVolume: "default",
		Log:           rpctest.Logger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(t, d) })
	getport := rpctest.CallMsg(5, portmap.Prog, 2, portmap.ProcGetport, rpctest.None(),
		append(append(rpctest.U32(nfs3.Program), rpctest.U32(3)...), append(rpctest.U32(portmap.IPProtoTCP), rpctest.U32(0)...)...))
	udpCall := func(addr string) (uint32, error) {
		c, err := net.Dial("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(getport); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1500)
		n, err := c.Read(buf)
		if err != nil {
			return 0, err
		}
		r := xdr.NewReader(buf[:n])
		if _, err := rpc.ParseReply(r); err != nil {
			return 0, err
		}
		return r.Uint32(), nil
	}
	addrs := d.PortmapAddrs()
	if len(addrs) != 2 {
		t.Fatalf("portmapper on %v", addrs)
	}
	for _, a := range addrs {
		if port, err := udpCall(a.String()); err != nil || int(port) != d.Port() {
			t.Fatalf("UDP GETPORT on %s: %d, %v", a, port, err)
		}
		c := rpctest.Dial(t, a.String())
		c.Send(getport)
		c.ExpectReply(5)
	}
	// UDP on the NFS port: the status monitor only.
	_, err = udpCall(d.Addr().String())
	var re *rpc.ReplyError
	if !errors.As(err, &re) || re.Accept != rpc.ProgUnavail {
		t.Fatalf("portmapper over UDP on the NFS port: %v, want PROG_UNAVAIL", err)
	}
	// TCP on the NFS port still finds everything.
	c := rpctest.Dial(t, d.Addr().String())
	c.Send(getport)
	c.ExpectReply(5)
}
