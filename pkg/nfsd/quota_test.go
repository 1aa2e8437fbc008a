package nfsd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rwxnfs/rwxnfs/pkg/exports"
	"github.com/rwxnfs/rwxnfs/pkg/nfs3/wire"
	"github.com/rwxnfs/rwxnfs/pkg/nfsclient"
	"github.com/rwxnfs/rwxnfs/pkg/quota"
)

const (
	kib = 1 << 10
	mib = 1 << 20
)

// treeUsage is what the tree under dir holds, in quota's unit, computed
// independently of pkg/quota: apparent bytes of regular files and
// symlinks and every inode below the root, each inode once.
func treeUsage(t *testing.T, dir string) quota.Usage {
	t.Helper()
	var u quota.Usage
	seen := map[uint64]bool{}
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		if seen[st.Ino] {
			return nil
		}
		seen[st.Ino] = true
		u.Inodes++
		if m := st.Mode & syscall.S_IFMT; m == syscall.S_IFREG || m == syscall.S_IFLNK {
			u.Bytes += st.Size
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func newQuotaVolume(t *testing.T, d *Daemon, id string, capacity, inodes int64) *exports.Volume {
	t.Helper()
	v, _, err := d.Table.CreateVolume(context.Background(), exports.CreateRequest{ID: id, Capacity: exports.Exactly(capacity), InodeLimit: inodes, Options: exports.DefaultOptions()})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func wantUsage(t *testing.T, v *exports.Volume, bytes, inodes int64) {
	t.Helper()
	if got := v.Quota.Usage(); got.Bytes != bytes || got.Inodes != inodes {
		t.Fatalf("usage %+v, want %d bytes %d inodes", got, bytes, inodes)
	}
	if tree := treeUsage(t, v.Dir()); tree != v.Quota.Usage() {
		t.Fatalf("usage %+v, but the tree holds %+v", v.Quota.Usage(), tree)
	}
}

func TestQuotaThroughNFS(t *testing.T) {
	d := start(t, t.TempDir())
	v := newQuotaVolume(t, d, "q", 1*mib, 8)
	c := dial(t, d, 1000, 1000)
	ctx := ctx(t)
	root := mount(t, c, "q")

	f, _, err := c.Create(ctx, root, "f", nfsclient.Guarded, nfsclient.SetAttr{})
	if err != nil {
		t.Fatal(err)
	}
	half := bytes.Repeat([]byte{'a'}, 512*kib)
	if _, err := c.Write(ctx, f, 0, half, nfsclient.Unstable); err != nil {
		t.Fatal(err)
	}
	wantUsage(t, v, 512*kib, 1)

	// Past the limit: DQUOT and nothing written.
	big := bytes.Repeat([]byte{'b'}, 600*kib)
	if _, err := c.Write(ctx, f, 512*kib, big, nfsclient.Unstable); !isStatus(err, wire.ErrDQuot) {
		t.Fatalf("write past the limit: %v, want DQUOT", err)
	}
	if a, _ := c.GetAttr(ctx, f); a.Size != 512*kib {
		t.Fatalf("size after refused write %d", a.Size)
	}
	// A sparse write far away counts its apparent size: refused too.
	if _, err := c.Write(ctx, f, 10*mib, []byte("x"), nfsclient.Unstable); !isStatus(err, wire.ErrDQuot) {
		t.Fatalf("sparse write past the limit: %v, want DQUOT", err)
	}
	// Overwrites within the size always succeed, even at the limit.
	if _, err := c.Write(ctx, f, 512*kib, half, nfsclient.Unstable); err != nil {
		t.Fatal(err)
	}
	wantUsage(t, v, 1*mib, 1)
	if _, err := c.Write(ctx, f, 0, big, nfsclient.FileSync); err != nil {
		t.Fatalf("overwrite at the limit: %v", err)
	}
	if _, err := c.Write(ctx, f, 1*mib, []byte("x"), nfsclient.Unstable); !isStatus(err, wire.ErrDQuot) {
		t.Fatalf("one byte past the limit: %v, want DQUOT", err)
	}
	// SETATTR size growing past the limit: refused; shrinking frees.
	if _, err := c.SetAttr(ctx, f, nfsclient.SetAttr{Size: nfsclient.U64(2 * mib)}); !isStatus(err, wire.ErrDQuot) {
		t.Fatalf("truncate up past the limit: %v, want DQUOT", err)
	}
	if _, err := c.SetAttr(ctx, f, nfsclient.SetAttr{Size: nfsclient.U64(100 * kib)}); err != nil {
		t.Fatal(err)
	}
	wantUsage(t, v, 100*kib, 1)

	// FSSTAT: df shows the PVC.
	fss, err := c.FSStat(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	if fss.TotalBytes != 1*mib || fss.FreeBytes != 1*mib-100*kib || fss.AvailBytes != 1*mib-100*kib || fss.TotalFiles != 8 || fss.FreeFiles != 7 {
		t.Fatalf("FSSTAT %+v", fss)
	}

	// Rename across directories keeps usage; symlinks count their text.
	dir, _, err := c.Mkdir(ctx, root, "dir", nfsclient.SetAttr{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Rename(ctx, root, "f", dir, "g"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Symlink(ctx, dir, "ln", "0123456789"); err != nil {
		t.Fatal(err)
	}
	wantUsage(t, v, 100*kib+10, 3)

	// Inode limit: 8. Hard links add no inode; removing one of two
	// links frees nothing.
	g, _, err := c.Lookup(ctx, dir, "g")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Link(ctx, g, root, "g2"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if _, _, err := c.Create(ctx, root, fmt.Sprintf("e%d", i), nfsclient.Guarded, nfsclient.SetAttr{}); err != nil {
			t.Fatal(err)
		}
	}
	wantUsage(t, v, 100*kib+10, 8)
	if _, _, err := c.Create(ctx, root, "one-too-many", nfsclient.Guarded, nfsclient.SetAttr{}); !isStatus(err, wire.ErrDQuot) {
		t.Fatalf("create past the inode limit: %v, want DQUOT", err)
	}
	if _, _, err := c.Mkdir(ctx, root, "d2", nfsclient.SetAttr{}); !isStatus(err, wire.ErrDQuot) {
		t.Fatalf("mkdir past the inode limit: %v, want DQUOT", err)
	}
	if _, _, err := c.MknodFifo(ctx, root, "p", nfsclient.SetAttr{}); !isStatus(err, wire.ErrDQuot) {
		t.Fatalf("mknod past the inode limit: %v, want DQUOT", err)
	}
	if _, _, err := c.Symlink(ctx, root, "s", "x"); !isStatus(err, wire.ErrDQuot) {
		t.Fatalf("symlink past the inode limit: %v, want DQUOT", err)
	}
	if err := c.Remove(ctx, dir, "g"); err != nil { // g2 still links it
		t.Fatal(err)
	}
	wantUsage(t, v, 100*kib+10, 8)
	if err := c.Remove(ctx, root, "g2"); err != nil {
		t.Fatal(err)
	}
	wantUsage(t, v, 10, 7)
	if _, _, err := c.Create(ctx, root, "fits-now", nfsclient.Guarded, nfsclient.SetAttr{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove(ctx, dir, "ln"); err != nil {
		t.Fatal(err)
	}
	// Rename over an existing file frees the replaced one.
	if _, err := c.Write(ctx, mustLookup(t, c, root, "e0"), 0, []byte("12345"), nfsclient.Unstable); err != nil {
		t.Fatal(err)
	}
	if err := c.Rename(ctx, root, "e1", root, "e0"); err != nil {
		t.Fatal(err)
	}
	wantUsage(t, v, 0, 6)

	// Expand while mounted: the next WRITE and FSSTAT see it.
	h, _, err := c.Create(ctx, root, "h", nfsclient.Guarded, nfsclient.SetAttr{})
	if err != nil {
		t.Fatal(err)
	}
	one := bytes.Repeat([]byte{'c'}, 1*mib)
	if _, err := c.Write(ctx, h, 0, one, nfsclient.Unstable); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(ctx, h, 1*mib, one, nfsclient.Unstable); !isStatus(err, wire.ErrDQuot) {
		t.Fatalf("write before expand: %v", err)
	}
	if _, err := d.Table.ExpandVolume("q", 4*mib); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(ctx, h, 1*mib, one, nfsclient.Unstable); err != nil {
		t.Fatalf("write after expand: %v", err)
	}
	if fss, _ := c.FSStat(ctx, root); fss.TotalBytes != 4*mib || fss.FreeBytes != 2*mib {
		t.Fatalf("FSSTAT after expand %+v", fss)
	}
	if _, err := d.Table.ExpandVolume("q", 1*mib); exports.KindOf(err) != exports.KindPrecondition {
		t.Fatalf("shrink below usage: %v, want a precondition error", err)
	}
	wantUsage(t, v, 2*mib, 7)

	// A volume without a limit reports the backing file system.
	dflt := mount(t, c, "default")
	if fss, err := c.FSStat(ctx, dflt); err != nil || fss.TotalBytes == 4*mib {
		t.Fatalf("FSSTAT of an unlimited volume %+v %v", fss, err)
	}
}

func mustLookup(t *testing.T, c *nfsclient.Client, dir []byte, name string) []byte {
	t.Helper()
	fh, _, err := c.Lookup(context.Background(), dir, name)
	if err != nil {
		t.Fatal(err)
	}
	return fh
}

// Eight writers on eight connections append to their own files, and two
// of them share one file, until the volume is full.
func TestQuotaConcurrentWriters(t *testing.T) {
	root := t.TempDir()
	d := start(t, root)
	const limit = 8 * mib
	v := newQuotaVolume(t, d, "c", limit, 0)
	ctx := ctx(t)
	chunk := bytes.Repeat([]byte{'z'}, 64*kib)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var acked int64
	for i := 0; i < 8; i++ {
		c := dial(t, d, 0, 0)
		vol := mount(t, c, "c")
		name := fmt.Sprintf("w%d", i%7) // writers 0 and 7 share w0
		fh, _, err := c.Create(ctx, vol, name, nfsclient.Unchecked, nfsclient.SetAttr{})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for k := 0; ; k++ {
				off := uint64(k*8+i) * uint64(len(chunk)) // interleaved, so the two sharers both extend
				_, err := c.Write(ctx, fh, off, chunk, nfsclient.Unstable)
				if isStatus(err, wire.ErrDQuot) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked += int64(len(chunk))
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	u := v.Quota.Usage()
	tree := treeUsage(t, v.Dir())
	t.Logf("usage %d bytes of %d; tree %d; acknowledged %d", u.Bytes, limit, tree.Bytes, acked)
	if u.Bytes > limit {
		t.Fatalf("usage %d over the limit %d", u.Bytes, limit)
	}
	if u != tree {
		t.Fatalf("usage %+v, tree %+v", u, tree)
	}
	if u.Bytes < limit-8*int64(len(chunk))*8 {
		t.Fatalf("writers stopped early: usage %d", u.Bytes)
	}

	// Usage survives a restart, and a lost usage file is rebuilt by the
	// start-up walk.
	stop(t, d)
	os.WriteFile(filepath.Join(root, "state", "usage", "c.json"), []byte(`{"bytes":1,"inodes":1}`), 0o600)
	d2 := start(t, root)
	v2 := d2.Table.MustVolume("c")
	waitReconciled(t, v2)
	if got := v2.Quota.Usage(); got != tree {
		t.Fatalf("after restart and reconcile: %+v, want %+v", got, tree)
	}
	var saved struct{ Bytes, Inodes int64 }
	data, _ := os.ReadFile(filepath.Join(root, "state", "usage", "c.json"))
	if json.Unmarshal(data, &saved); saved.Bytes != tree.Bytes {
		t.Fatalf("saved usage %s", data)
	}
}

func waitReconciled(t *testing.T, v *exports.Volume) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !v.Quota.Reconciled() {
		if time.Now().After(deadline) {
			t.Fatal("usage never reconciled")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The start-up walk runs while clients change the tree; whatever the
// interleaving, the final usage is what the tree holds.
func TestReconcileWhileServing(t *testing.T) {
	root := t.TempDir()
	// A tree made behind nfsd's back: its usage is unknown until walked.
	vdir := filepath.Join(root, "volumes", "r")
	for i := 0; i < 40; i++ {
		sub := filepath.Join(vdir, fmt.Sprintf("d%02d", i))
		if err := os.MkdirAll(sub, 0o777); err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 100; j++ {
			os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%03d", j)), bytes.Repeat([]byte{'r'}, i*10+j), 0o666)
		}
	}
	n := 0
	quota.WalkHook = func() {
		if n++; n%20 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	t.Cleanup(func() { quota.WalkHook = nil }) // after the daemon stops
	d := start(t, root)
	v := d.Table.MustVolume("r")
	c := dial(t, d, 0, 0)
	ctx := ctx(t)
	vol := mount(t, c, "r")
	// Change the tree while the walk runs: grow, shrink, remove, move
	// files and directories between parts walked and not yet walked.
	changed := 0
	for i := 39; i >= 0 && !v.Quota.Reconciled(); i -= 3 {
		changed++
		dh := mustLookup(t, c, vol, fmt.Sprintf("d%02d", i))
		fh := mustLookup(t, c, dh, "f050")
		c.Write(ctx, fh, 0, bytes.Repeat([]byte{'w'}, 5000), nfsclient.Unstable)
		c.Remove(ctx, dh, "f001")
		c.Create(ctx, dh, "new", nfsclient.Unchecked, nfsclient.SetAttr{Size: nfsclient.U64(777)})
		c.Rename(ctx, dh, "f002", vol, fmt.Sprintf("moved%02d", i))
		if i > 3 {
			c.Rename(ctx, vol, fmt.Sprintf("d%02d", i-2), dh, "subdir")
		}
	}
	waitReconciled(t, v)
	t.Logf("%d rounds of changes ran during the walk", changed)
	if u, tree := v.Quota.Usage(), treeUsage(t, vdir); u != tree {
		t.Fatalf("usage after a walk under load %+v, tree %+v", u, tree)
	}
}

// Clients holding handles of a deleted volume get STALE.
func TestDeletedVolumeIsStale(t *testing.T) {
	d := start(t, t.TempDir())
	newQuotaVolume(t, d, "gone", 1*mib, 0)
	c := dial(t, d, 0, 0)
	ctx := ctx(t)
	root := mount(t, c, "gone")
	f, _, err := c.Create(ctx, root, "f", nfsclient.Guarded, nfsclient.SetAttr{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Table.DeleteVolume("gone", exports.ReclaimDelete); err != nil {
		t.Fatal(err)
	}
	for _, fh := range [][]byte{root, f} {
		if _, err := c.GetAttr(ctx, fh); !isStatus(err, wire.ErrStale) {
			t.Fatalf("GETATTR after delete: %v, want STALE", err)
		}
	}
	if _, err := c.Write(ctx, f, 0, []byte("x"), nfsclient.Unstable); !isStatus(err, wire.ErrStale) {
		t.Fatalf("WRITE after delete: %v, want STALE", err)
	}
}

// Creates of names that may exist race with removes of the same names
// from many connections: CREATE (unchecked, guarded, exclusive), SYMLINK
// and MKDIR against REMOVE and RMDIR. Whatever the interleaving, every
// object that comes into being is charged once and freed once: usage
// never goes negative or past a limit, it ends equal to what the tree
// holds, and the limits still hold afterwards.
func TestQuotaCreateRemoveRace(t *testing.T) {
	d := start(t, t.TempDir())
	const byteLimit, inodeLimit = 16 * kib, 12
	v := newQuotaVolume(t, d, "race", byteLimit, inodeLimit)
	ctx := ctx(t)
	names := []string{"n0", "n1", "n2", "n3", "n4", "n5"}
	target := string(bytes.Repeat([]byte{'t'}, 3000))

	stop := make(chan struct{})
	var sampled sync.WaitGroup
	var worst quota.Usage
	sampled.Add(1)
	go func() {
		defer sampled.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			u := v.Quota.Usage()
			worst.Bytes, worst.Inodes = min(worst.Bytes, u.Bytes), min(worst.Inodes, u.Inodes)
			if u.Bytes > byteLimit || u.Inodes > inodeLimit {
				t.Errorf("usage %+v past the limits", u)
				return
			}
			time.Sleep(50 * time.Microsecond)
		}
	}()

	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		c := dial(t, d, 0, 0)
		if w%2 == 1 {
			c = dial(t, d, 1000, 1000)
		}
		root := mount(t, c, "race")
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 300; i++ {
				name := names[(i*7+w*3)%len(names)]
				var err error
				switch (i + w) % 8 {
				case 0:
					_, _, err = c.Create(ctx, root, name, nfsclient.Unchecked, nfsclient.SetAttr{})
				case 1:
					_, _, err = c.Create(ctx, root, name, nfsclient.Guarded, nfsclient.SetAttr{})
				case 2:
					_, _, err = c.CreateExclusive(ctx, root, name, [8]byte{byte(w), byte(i)})
				case 3:
					_, _, err = c.Symlink(ctx, root, name, target)
				case 4:
					_, _, err = c.Mkdir(ctx, root, name, nfsclient.SetAttr{Mode: nfsclient.U32(0o777)})
				case 5, 6:
					err = c.Remove(ctx, root, name)
				case 7:
					err = c.Rmdir(ctx, root, name)
				}
				var ne *nfsclient.Error
				if err != nil && !errors.As(err, &ne) {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(stop)
	sampled.Wait()
	u, tree := v.Quota.Usage(), treeUsage(t, v.Dir())
	t.Logf("usage %+v, tree %+v, lowest usage seen %+v", u, tree, worst)
	if worst.Bytes < 0 || worst.Inodes < 0 {
		t.Fatalf("usage went negative: %+v", worst)
	}
	if u != tree {
		t.Fatalf("usage %+v, but the tree holds %+v", u, tree)
	}
	// The inode limit still holds: fill the volume and count.
	c := dial(t, d, 0, 0)
	root := mount(t, c, "race")
	for i := 0; ; i++ {
		_, _, err := c.Create(ctx, root, fmt.Sprintf("fill%d", i), nfsclient.Guarded, nfsclient.SetAttr{})
		if isStatus(err, wire.ErrDQuot) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if i > inodeLimit {
			t.Fatalf("created %d files on a volume limited to %d inodes", i+1, inodeLimit)
		}
	}
	if tree := treeUsage(t, v.Dir()); tree.Inodes != inodeLimit || v.Quota.Usage() != tree {
		t.Fatalf("after filling: tree %+v, usage %+v, limit %d inodes", tree, v.Quota.Usage(), inodeLimit)
	}
}

// Lowering a volume's capacity (ExpandVolume) or inode limit
// (UpdateVolume) while clients write and create must never leave usage
// above a limit the call reported as set: the check against usage and
// the change of limit are one step for every reservation. Each round
// raises the limits (so writers are busy again) and then lowers them to
// just above the usage it sees, so writers racing the lowering would take
// the volume past the new limit if they could still reserve under the old
// one (before the fix: failed in 3 of 3 runs).
func TestLowerLimitsWhileWriting(t *testing.T) {
	d := start(t, t.TempDir())
	v := newQuotaVolume(t, d, "low", 1*mib, 20)
	ctx := ctx(t)
	chunk := bytes.Repeat([]byte{'l'}, 64*kib)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		c := dial(t, d, 0, 0)
		root := mount(t, c, "low")
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var fh []byte
			if i%2 == 0 { // writers append to their own file; the others create empty files
				var err error
				if fh, _, err = c.Create(ctx, root, fmt.Sprintf("w%d", i), nfsclient.Unchecked, nfsclient.SetAttr{}); err != nil {
					t.Error(err)
					return
				}
			}
			off := uint64(0)
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				if fh != nil {
					if _, err = c.Write(ctx, fh, off, chunk, nfsclient.Unstable); err == nil {
						off += uint64(len(chunk))
					}
				} else {
					_, _, err = c.Create(ctx, root, fmt.Sprintf("c%d-%d", i, k), nfsclient.Guarded, nfsclient.SetAttr{})
				}
				if err != nil && !isStatus(err, wire.ErrDQuot) {
					t.Error(err)
					return
				}
			}
		}(i)
	}

	lowered, refused := 0, 0
	for round := 0; round < 40; round++ {
		u := v.Quota.Usage()
		bytesRound := round%2 == 0
		var err error
		if bytesRound {
			_, err = d.Table.ExpandVolume("low", u.Bytes+4*mib)
		} else {
			lim := u.Inodes + 40
			_, err = d.Table.UpdateVolume("low", exports.VolumeUpdate{InodeLimit: &lim})
		}
		if err != nil {
			t.Fatal(err)
		}
		u = v.Quota.Usage()
		var lim int64
		if bytesRound {
			lim = u.Bytes + 2*int64(len(chunk))
			_, err = d.Table.ExpandVolume("low", lim)
		} else {
			lim = u.Inodes + 2
			_, err = d.Table.UpdateVolume("low", exports.VolumeUpdate{InodeLimit: &lim})
		}
		if err != nil {
			if exports.KindOf(err) != exports.KindPrecondition {
				t.Fatal(err)
			}
			refused++
			continue
		}
		lowered++
		// Reservations admitted under the old limit are charged already;
		// none admitted later can pass the new one.
		if after := v.Quota.Usage(); (bytesRound && after.Bytes > lim) || (!bytesRound && after.Inodes > lim) {
			t.Errorf("round %d: limit lowered to %d, usage right after: %+v", round, lim, after)
		}
	}
	close(stop)
	wg.Wait()
	u, l := v.Quota.Usage(), v.Quota.Limits()
	t.Logf("%d lowerings, %d refused; usage %+v, limits %+v", lowered, refused, u, l)
	if lowered == 0 {
		t.Fatal("no lowering succeeded")
	}
	if u.Bytes > l.Bytes || u.Inodes > l.Inodes {
		t.Fatalf("usage %+v above the limits %+v", u, l)
	}
	if tree := treeUsage(t, v.Dir()); tree != u {
		t.Fatalf("usage %+v, but the tree holds %+v", u, tree)
	}
}
