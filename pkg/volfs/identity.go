package volfs

import (
	"slices"

	"github.com/rwxnfs/rwxnfs/pkg/exports"
	"github.com/rwxnfs/rwxnfs/pkg/fscred"
	"github.com/rwxnfs/rwxnfs/pkg/vfs"
)

// identity maps a caller through a volume's squash options to the
// identity its calls run as. A caller without a Unix identity is the
// anonymous user. Root squash takes away every root identity the
// credential carries: uid 0 makes the whole caller anonymous, and gid 0,
// as the primary group or any supplementary one, becomes the anonymous
// gid, as knfsd does (else a caller listing group 0 would get root's
// group rights on root:root files).
func identity(o *exports.Options, c *vfs.Caller) fscred.Cred {
	anon := fscred.Cred{UID: o.AnonUID, GID: o.AnonGID}
	if !c.Unix || o.Squash == exports.SquashAll {
		return anon
	}
	if o.Squash == exports.SquashRoot && c.UID == 0 {
		return anon
	}
	id := fscred.Cred{UID: c.UID, GID: c.GID, Groups: c.Groups}
	if o.Squash != exports.SquashRoot {
		return id
	}
	if id.GID == 0 {
		id.GID = o.AnonGID
	}
	if slices.Contains(id.Groups, 0) {
		id.Groups = slices.Clone(id.Groups) // the caller's slice is the request's
		for i, g := range id.Groups {
			if g == 0 {
				id.Groups[i] = o.AnonGID
			}
		}
	}
	return id
}
