package rpc

import (
	"errors"

	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// AuthSysCred is an AUTH_SYS (AUTH_UNIX) credential.
type AuthSysCred struct {
	Stamp   uint32
	Machine string
	UID     uint32
	GID     uint32
	GIDs    []uint32
}

var errBadAuthSys = errors.New("rpc: malformed AUTH_SYS credential")

// ParseAuthSys decodes the body of an AUTH_SYS credential.
func ParseAuthSys(body []byte) (AuthSysCred, error) {
	var c AuthSysCred
	r := xdr.NewReader(body)
	c.Stamp = r.Uint32()
	c.Machine = r.String(MaxMachineName)
	c.UID = r.Uint32()
	c.GID = r.Uint32()
	n := r.Uint32()
	if n > MaxAuthGroups {
		return c, errBadAuthSys
	}
	if n > 0 {
		c.GIDs = make([]uint32, n)
		for i := range c.GIDs {
			c.GIDs[i] = r.Uint32()
		}
	}
	if r.Err() != nil || r.Remaining() != 0 {
		return c, errBadAuthSys
	}
	return c, nil
}

// Opaque encodes c as an AUTH_SYS opaque_auth.
func (c AuthSysCred) Opaque() OpaqueAuth {
	w := xdr.NewWriter(64)
	w.Uint32(c.Stamp)
	w.String(c.Machine)
	w.Uint32(c.UID)
	w.Uint32(c.GID)
	w.Uint32(uint32(len(c.GIDs)))
	for _, g := range c.GIDs {
		w.Uint32(g)
	}
	return OpaqueAuth{Flavor: AuthSys, Body: w.Bytes()}
}
