package volfs

import (
	"reflect"
	"testing"

	"github.com/rwxnfs/rwxnfs/pkg/exports"
	"github.com/rwxnfs/rwxnfs/pkg/fscred"
	"github.com/rwxnfs/rwxnfs/pkg/vfs"
)

// The identity a caller acts as, for each squash mode.
func TestIdentity(t *testing.T) {
	opts := func(sq exports.Squash) *exports.Options {
		return &exports.Options{Squash: sq, AnonUID: 65534, AnonGID: 65533}
	}
	anon := fscred.Cred{UID: 65534, GID: 65533}
	user := vfs.Caller{Unix: true, UID: 1000, GID: 1000, Groups: []uint32{0, 27, 0}}
	root := vfs.Caller{Unix: true, UID: 0, GID: 0, Groups: []uint32{0}}
	for _, tc := range []struct {
		name string
		sq   exports.Squash
		c    vfs.Caller
		want fscred.Cred
	}{
		{"no credential", exports.SquashNone, vfs.Caller{}, anon},
		{"none keeps root", exports.SquashNone, root, fscred.Cred{UID: 0, GID: 0, Groups: []uint32{0}}},
		{"none keeps group 0", exports.SquashNone, user, fscred.Cred{UID: 1000, GID: 1000, Groups: []uint32{0, 27, 0}}},
		{"root squashes root", exports.SquashRoot, root, anon},
		{"root squashes gid 0", exports.SquashRoot, vfs.Caller{Unix: true, UID: 1000, GID: 0}, fscred.Cred{UID: 1000, GID: 65533}},
		{"root squashes every supplementary 0", exports.SquashRoot, user, fscred.Cred{UID: 1000, GID: 1000, Groups: []uint32{65533, 27, 65533}}},
		{"all squashes everyone", exports.SquashAll, user, anon},
	} {
		c := tc.c
		if got := identity(opts(tc.sq), &c); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
	if user.Groups[0] != 0 {
		t.Error("squashing changed the caller's own group list")
	}
}
