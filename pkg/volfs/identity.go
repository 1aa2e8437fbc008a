package volfs

import (
	"github.com/rwxnfs/rwxnfs/pkg/exports"
	"github.com/rwxnfs/rwxnfs/pkg/fscred"
	"github.com/rwxnfs/rwxnfs/pkg/vfs"
)

// identity maps a caller through a volume's squash options to the
// identity its calls run as. A caller without a Unix identity is the
// anonymous user.
func identity(o *exports.Options, c *vfs.Caller) fscred.Cred {
	anon := fscred.Cred{UID: o.AnonUID, GID: o.AnonGID}
	if !c.Unix || o.Squash == exports.SquashAll {
		return anon
	}
	if o.Squash == exports.SquashRoot && c.UID == 0 {
		return anon
	}
	id := fscred.Cred{UID: c.UID, GID: c.GID, Groups: c.Groups}
	if o.Squash == exports.SquashRoot && id.GID == 0 {
		id.GID = o.AnonGID // root_squash also squashes gid 0, as knfsd does
	}
	return id
}
