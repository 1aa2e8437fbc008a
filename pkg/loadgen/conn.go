// Package loadgen drives an NFSv3 server the way the Linux client does at
// scale: several TCP connections (as with nconnect=), many RPCs in flight
// on each, 1 MiB READ and WRITE, UNSTABLE writes made durable by COMMIT.
// Every reply is checked: a non-OK status or data that differs from what
// was written ends the workload with an error.
package loadgen

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/rwxnfs/rwxnfs/pkg/nfsclient"
	"github.com/rwxnfs/rwxnfs/pkg/rpc"
	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// Program numbers looked up through the portmapper.
const (
	progPortmap = 100000
	progNFS     = 100003
	progMount   = 100005
	progNLM     = 100021
)

// GetPort asks the portmapper at host:111 (or pmAddr) for the TCP port of
// prog/vers, as the Linux mount does before MOUNT.
func GetPort(ctx context.Context, pmAddr string, prog, vers uint32) (int, error) {
	c, err := rpc.Dial(ctx, pmAddr)
	if err != nil {
		return 0, fmt.Errorf("portmapper %s: %w", pmAddr, err)
	}
	defer c.Close()
	b, err := c.Call(ctx, progPortmap, 2, 3, func(w *xdr.Writer) {
		w.Uint32(prog)
		w.Uint32(vers)
		w.Uint32(6) // IPPROTO_TCP
		w.Uint32(0)
	})
	if err != nil {
		return 0, fmt.Errorf("portmapper GETPORT %d v%d: %w", prog, vers, err)
	}
	r := xdr.NewReader(b)
	p := r.Uint32()
	if r.Err() != nil {
		return 0, r.Err()
	}
	if p == 0 {
		return 0, fmt.Errorf("portmapper: program %d v%d not registered", prog, vers)
	}
	return int(p), nil
}

// Target says where a server is and how to reach its programs. A zero
// port is looked up through the portmapper on the host's port 111.
type Target struct {
	Host      string
	NFSPort   int
	MountPort int
	NLMPort   int
	Portmap   int // portmapper port; 0 means 111
	Export    string
}

func (t *Target) pm() string {
	p := t.Portmap
	if p == 0 {
		p = 111
	}
	return net.JoinHostPort(t.Host, strconv.Itoa(p))
}

func (t *Target) addr(port int) string { return net.JoinHostPort(t.Host, strconv.Itoa(port)) }

// Resolve fills in ports left zero from the portmapper.
func (t *Target) Resolve(ctx context.Context, needNLM bool) error {
	var err error
	if t.NFSPort == 0 {
		if t.NFSPort, err = GetPort(ctx, t.pm(), progNFS, 3); err != nil {
			return err
		}
	}
	if t.MountPort == 0 {
		if t.MountPort, err = GetPort(ctx, t.pm(), progMount, 3); err != nil {
			return err
		}
	}
	if needNLM && t.NLMPort == 0 {
		if t.NLMPort, err = GetPort(ctx, t.pm(), progNLM, 4); err != nil {
			return err
		}
	}
	return nil
}

// Mount calls MOUNT v3 MNT on the mount port and returns the root handle.
func (t *Target) Mount(ctx context.Context) ([]byte, error) {
	c, err := nfsclient.Dial(ctx, t.addr(t.MountPort))
	if err != nil {
		return nil, fmt.Errorf("mount port: %w", err)
	}
	defer c.Close()
	c.SetCred(0, 0)
	fh, err := c.Mount(ctx, t.Export)
	if err != nil {
		return nil, fmt.Errorf("MNT %s: %w", t.Export, err)
	}
	return fh, nil
}

// Dial opens n NFS connections with root's AUTH_SYS credential.
func (t *Target) Dial(ctx context.Context, n int) ([]*nfsclient.Client, error) {
	var cs []*nfsclient.Client
	for i := 0; i < n; i++ {
		c, err := nfsclient.Dial(ctx, t.addr(t.NFSPort))
		if err != nil {
			for _, c := range cs {
				c.Close()
			}
			return nil, fmt.Errorf("nfs port: %w", err)
		}
		c.SetCred(0, 0)
		cs = append(cs, c)
	}
	return cs, nil
}
