package nfsd

import (
	"testing"

	"github.com/rwxnfs/rwxnfs/pkg/nfsclient"
)

// Operations that fail part-way leave nothing behind: no object, no
// quota charge.
func TestFailedCreatesLeaveNothing(t *testing.T) {
	d := start(t, t.TempDir())
	v := newQuotaVolume(t, d, "q", 1*mib, 4)
	c := dial(t, d, 1000, 1000)
	root := mount(t, c, "q")
	wantUsage(t, v, 0, 0)
	for _, tc := range []struct {
		name string
		op   func(name string) error
	}{
		{"CREATE with a size past the capacity", func(n string) error {
			_, _, err := c.Create(ctx(t), root, n, nfsclient.Unchecked, nfsclient.SetAttr{Size: nfsclient.U64(10 * mib)})
			return err
		}},
		{"CREATE giving the file to another user", func(n string) error {
			_, _, err := c.Create(ctx(t), root, n, nfsclient.Unchecked, nfsclient.SetAttr{UID: nfsclient.U32(0)})
			return err
		}},
		{"MKDIR giving the directory to another group", func(n string) error {
			_, _, err := c.Mkdir(ctx(t), root, n, nfsclient.SetAttr{GID: nfsclient.U32(0)})
			return err
		}},
		{"MKNOD giving the FIFO to another group", func(n string) error {
			_, _, err := c.MknodFifo(ctx(t), root, n, nfsclient.SetAttr{GID: nfsclient.U32(0)})
			return err
		}},
		{"CREATE GUARDED with a size past the capacity", func(n string) error {
			_, _, err := c.Create(ctx(t), root, n, nfsclient.Guarded, nfsclient.SetAttr{Size: nfsclient.U64(10 * mib)})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.op("x"); err == nil {
				t.Fatal("succeeded")
			}
			if _, _, err := c.Lookup(ctx(t), root, "x"); err == nil {
				t.Fatal("the failed call left its object behind")
			}
			wantUsage(t, v, 0, 0)
		})
	}
}
