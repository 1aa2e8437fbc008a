package nfsd

import (
	"context"
	"testing"

	"github.com/rwxnfs/rwxnfs/pkg/exports"
	"github.com/rwxnfs/rwxnfs/pkg/locking"
	"github.com/rwxnfs/rwxnfs/pkg/nfsclient"
	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// nlmLock sends a non-blocking NLM4 LOCK for the whole file.
func nlmLock(t *testing.T, c *nfsclient.Client, fh []byte, svid int32) locking.Stat {
	t.Helper()
	args := locking.LockArgs{Cookie: []byte{1}, Exclusive: true,
		Lock: locking.Lock4{CallerName: "client", FH: fh, OH: []byte{byte(svid)}, Svid: svid}}
	b, err := c.RPC.Call(ctx(t), locking.NLMProg, locking.NLMVers, locking.ProcLock, args.Encode)
	if err != nil {
		t.Fatalf("NLM LOCK: %v", err)
	}
	var res locking.Res
	if err := res.Decode(xdr.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	return res.Stat
}

func nlmUnlock(t *testing.T, c *nfsclient.Client, fh []byte, svid int32) locking.Stat {
	t.Helper()
	args := locking.UnlockArgs{Cookie: []byte{2},
		Lock: locking.Lock4{CallerName: "client", FH: fh, OH: []byte{byte(svid)}, Svid: svid}}
	b, err := c.RPC.Call(ctx(t), locking.NLMProg, locking.NLMVers, locking.ProcUnlock, args.Encode)
	if err != nil {
		t.Fatalf("NLM UNLOCK: %v", err)
	}
	var res locking.Res
	if err := res.Decode(xdr.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	return res.Stat
}

// TestLockingWiredIn: nfsd serves NLM on its NFS port, registered with its
// portmapper, keyed by the same handles NFS hands out; locks follow the
// file across a rename, and go away with their volume.
func TestLockingWiredIn(t *testing.T) {
	root := t.TempDir()
	d := start(t, root)
	found := map[uint32]bool{}
	for _, m := range d.Portmap.Mappings() {
		found[m.Prog] = true
	}
	if !found[locking.NLMProg] || !found[locking.NSMProg] {
		t.Fatalf("portmapper lacks NLM or NSM: %+v", d.Portmap.Mappings())
	}
	c := dial(t, d, 0, 0)
	ctx := ctx(t)
	if _, _, err := d.Table.CreateVolume(context.Background(), exports.CreateRequest{ID: "logs", Options: exports.DefaultOptions()}); err != nil {
		t.Fatal(err)
	}
	vol := mount(t, c, "logs")
	f, _, err := c.Create(ctx, vol, "app.log", nfsclient.Guarded, nfsclient.SetAttr{})
	if err != nil {
		t.Fatal(err)
	}
	if st := nlmLock(t, c, f, 1); st != locking.StatGranted {
		t.Fatalf("first LOCK: %v", st)
	}
	if st := nlmLock(t, c, f, 2); st != locking.StatDenied {
		t.Fatalf("conflicting LOCK from another owner: %v, want DENIED", st)
	}
	// The lock is on the file, not the name.
	if err := c.Rename(ctx, vol, "app.log", vol, "app.log.1"); err != nil {
		t.Fatal(err)
	}
	if st := nlmLock(t, c, f, 2); st != locking.StatDenied {
		t.Fatalf("LOCK after rename: %v, want DENIED", st)
	}
	if st := nlmLock(t, c, []byte("forged handle"), 2); st != locking.StatStaleFH {
		t.Fatalf("LOCK of a forged handle: %v, want STALE_FH", st)
	}
	if got := len(d.Locks.Locks("logs", "")); got != 1 {
		t.Fatalf("admin view lists %d locks on the volume, want 1", got)
	}
	if st := nlmUnlock(t, c, f, 1); st != locking.StatGranted {
		t.Fatalf("UNLOCK: %v", st)
	}
	if st := nlmLock(t, c, f, 2); st != locking.StatGranted {
		t.Fatalf("LOCK after UNLOCK: %v", st)
	}
	if _, err := d.Table.DeleteVolume("logs", exports.ReclaimRetain); err != nil {
		t.Fatal(err)
	}
	if got := len(d.Locks.Locks("logs", "")); got != 0 {
		t.Fatalf("%d locks outlived their volume", got)
	}
}
