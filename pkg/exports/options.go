package exports

import (
	"fmt"
	"net/netip"
	"strings"
)

// Squash says which callers lose their identity (pkg/volfs applies it).
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

	// AllowSetID keeps set-uid and set-gid bits that clients set on
	// files (CREATE, MKNOD, SETATTR); off, they are cleared, so a client
	// cannot plant a set-uid binary for other clients or the host.
	// Set-gid on directories (group inheritance) is always kept.
	AllowSetID bool `json:"allowSetID,omitempty"`
	// AllowDevices lets an unsquashed root client make character and
	// block device nodes (MKNOD); off, that is NFS3ERR_PERM. FIFOs and
	// sockets are always allowed.
	AllowDevices bool `json:"allowDevices,omitempty"`
}

// DefaultOptions: read-write, no squash (pods commonly run as root and
// expect to own what they write, as with other Kubernetes NFS
// provisioners), anonymous user nobody, any client, no set-id bits on
// files and no device nodes.
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
