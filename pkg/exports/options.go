package exports

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/rwxnfs/rwxnfs/pkg/fscred"
	"github.com/rwxnfs/rwxnfs/pkg/rpc"
)

// Squash says which callers lose their identity.
type Squash string

// Squash modes, as in exports(5).
const (
	SquashNone Squash = "none" // no_root_squash: every uid kept
	SquashRoot Squash = "root" // root_squash: uid 0 becomes the anonymous user
	SquashAll  Squash = "all"  // all_squash: everyone becomes the anonymous user
)

// Nobody is the default anonymous uid and gid.
const Nobody = 65534

// Options are a volume's export options.
type Options struct {
	Squash   Squash         `json:"squash"`
	AnonUID  uint32         `json:"anonUID"`
	AnonGID  uint32         `json:"anonGID"`
	ReadOnly bool           `json:"readOnly"`
	Clients  []netip.Prefix `json:"clients,omitempty"` // empty: any client
}

// DefaultOptions: read-write, no squash (pods commonly run as root and
// expect to own what they write, as with other Kubernetes NFS
// provisioners), anonymous user nobody, any client.
func DefaultOptions() Options {
	return Options{Squash: SquashNone, AnonUID: Nobody, AnonGID: Nobody}
}

// Validate checks the options.
func (o Options) Validate() error {
	switch o.Squash {
	case SquashNone, SquashRoot, SquashAll:
	default:
		return fmt.Errorf("squash must be none, root or all, not %q", o.Squash)
	}
	for _, p := range o.Clients {
		if !p.IsValid() {
			return fmt.Errorf("invalid client prefix %v", p)
		}
	}
	return nil
}

// ParseClients parses a comma-separated list of CIDRs or addresses.
func ParseClients(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("client %q: %w", f, err)
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("client %q: %w", f, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// AllowsClient reports whether a client address may use the volume.
func (o Options) AllowsClient(ip netip.Addr) bool {
	if len(o.Clients) == 0 {
		return true
	}
	ip = ip.Unmap()
	for _, p := range o.Clients {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Cred maps a call's credential to the identity it runs as on this volume.
// AUTH_NONE callers are anonymous.
func (o Options) Cred(sys *rpc.AuthSysCred) fscred.Cred {
	anon := fscred.Cred{UID: o.AnonUID, GID: o.AnonGID}
	if sys == nil || o.Squash == SquashAll {
		return anon
	}
	if o.Squash == SquashRoot && sys.UID == 0 {
		return anon
	}
	c := fscred.Cred{UID: sys.UID, GID: sys.GID, Groups: sys.GIDs}
	if o.Squash == SquashRoot && c.GID == 0 {
		c.GID = o.AnonGID // root_squash also squashes gid 0, as knfsd does
	}
	return c
}
