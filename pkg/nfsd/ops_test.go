package nfsd

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/rwxnfs/rwxnfs/pkg/exports"
	"github.com/rwxnfs/rwxnfs/pkg/nfs3/wire"
	"github.com/rwxnfs/rwxnfs/pkg/nfsclient"
)

func isStatus(err error, s wire.Status) bool { return errors.Is(err, nfsclient.Status(s)) }

func TestNamespaceOperations(t *testing.T) {
	root := t.TempDir()
	d := start(t, root)
	c := dial(t, d, 0, 0)
	ctx := ctx(t)
	vol := mount(t, c, "default")
	disk := filepath.Join(root, "volumes", "default")

	// mkdir, create, write, read
	dir, dattr, err := c.Mkdir(ctx, vol, "dir", nfsclient.SetAttr{Mode: nfsclient.U32(0o750)})
	if err != nil || dattr == nil || dattr.Type != nfsclient.TypeDir || dattr.Mode != 0o750 {
		t.Fatalf("mkdir: %v %+v", err, dattr)
	}
	f, _, err := c.Create(ctx, dir, "f", nfsclient.Guarded, nfsclient.SetAttr{Mode: nfsclient.U32(0o640)})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Create(ctx, dir, "f", nfsclient.Guarded, nfsclient.SetAttr{}); !isStatus(err, wire.ErrExist) {
		t.Fatalf("guarded create of existing file: %v, want EXIST", err)
	}
	if _, err := c.Write(ctx, f, 0, []byte("hello world"), nfsclient.FileSync); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(disk, "dir", "f")); string(got) != "hello world" {
		t.Fatalf("on disk: %q", got)
	}
	if st, _ := os.Stat(filepath.Join(disk, "dir", "f")); st.Mode().Perm() != 0o640 {
		t.Fatalf("mode on disk %v", st.Mode())
	}

	// setattr: mode, owner, size, times
	mtime := time.Unix(1_600_000_000, 123)
	if _, err := c.SetAttr(ctx, f, nfsclient.SetAttr{
		Mode: nfsclient.U32(0o600), UID: nfsclient.U32(1234), GID: nfsclient.U32(5678),
		Size: nfsclient.U64(5), Mtime: &mtime,
	}); err != nil {
		t.Fatal(err)
	}
	st := lstat(t, filepath.Join(disk, "dir", "f"))
	if st.Mode&0o7777 != 0o600 || st.Uid != 1234 || st.Gid != 5678 || st.Size != 5 || st.Mtim.Sec != mtime.Unix() || st.Mtim.Nsec != 123 {
		t.Fatalf("after setattr: mode %o uid %d gid %d size %d mtime %v", st.Mode&0o7777, st.Uid, st.Gid, st.Size, st.Mtim)
	}

	// symlink and readlink; the server never follows it
	ln, lattr, err := c.Symlink(ctx, dir, "ln", "../../../etc/passwd")
	if err != nil || lattr.Type != nfsclient.TypeLnk {
		t.Fatalf("symlink: %v %+v", err, lattr)
	}
	if target, err := c.ReadLink(ctx, ln); err != nil || target != "../../../etc/passwd" {
		t.Fatalf("readlink: %q %v", target, err)
	}
	if _, _, err := c.Read(ctx, ln, 0, 100); !isStatus(err, wire.ErrInval) {
		t.Fatalf("READ of a symlink: %v, want INVAL", err)
	}
	if target, _ := os.Readlink(filepath.Join(disk, "dir", "ln")); target != "../../../etc/passwd" {
		t.Fatalf("symlink on disk: %q", target)
	}

	// hard link
	if err := c.Link(ctx, f, vol, "hard"); err != nil {
		t.Fatal(err)
	}
	if a, err := c.GetAttr(ctx, f); err != nil || a.Nlink != 2 {
		t.Fatalf("nlink after LINK: %+v %v", a, err)
	}
	if !sameFile(t, filepath.Join(disk, "hard"), filepath.Join(disk, "dir", "f")) {
		t.Fatal("hard link is not the same inode")
	}

	// rename across directories, over an existing file
	if _, _, err := c.Create(ctx, vol, "victim", nfsclient.Unchecked, nfsclient.SetAttr{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Rename(ctx, dir, "f", vol, "victim"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(disk, "dir", "f")); !os.IsNotExist(err) {
		t.Fatalf("rename source still there: %v", err)
	}
	if a, err := c.GetAttr(ctx, f); err != nil || a.Size != 5 {
		t.Fatalf("handle after rename: %+v %v", a, err)
	}

	// remove, rmdir
	if err := c.Rmdir(ctx, vol, "dir"); !isStatus(err, wire.ErrNotEmpty) {
		t.Fatalf("rmdir of non-empty dir: %v", err)
	}
	if err := c.Remove(ctx, dir, "ln"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rmdir(ctx, vol, "dir"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetAttr(ctx, dir); !isStatus(err, wire.ErrStale) {
		t.Fatalf("GETATTR of removed dir: %v, want STALE", err)
	}
	if err := c.Remove(ctx, vol, "nothing"); !isStatus(err, wire.ErrNoEnt) {
		t.Fatalf("remove of missing: %v", err)
	}
	// FIFO
	if _, a, err := c.MknodFifo(ctx, vol, "fifo", nfsclient.SetAttr{Mode: nfsclient.U32(0o600)}); err != nil || a.Type != nfsclient.TypeFifo {
		t.Fatalf("mknod fifo: %v %+v", err, a)
	}
	// exclusive create is idempotent for the same verifier only
	verf := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
	h1, _, err := c.CreateExclusive(ctx, vol, "excl", verf)
	if err != nil {
		t.Fatal(err)
	}
	h2, _, err := c.CreateExclusive(ctx, vol, "excl", verf)
	if err != nil || !bytes.Equal(h1, h2) {
		t.Fatalf("retransmitted exclusive create: %v", err)
	}
	if _, _, err := c.CreateExclusive(ctx, vol, "excl", [8]byte{9}); !isStatus(err, wire.ErrExist) {
		t.Fatalf("exclusive create with another verifier: %v", err)
	}
}

func lstat(t *testing.T, p string) *syscall.Stat_t {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t)
}

func sameFile(t *testing.T, a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

func TestReadDirTenThousand(t *testing.T) {
	root := t.TempDir()
	d := start(t, root)
	c := dial(t, d, 0, 0)
	ctx := ctx(t)
	vol := mount(t, c, "default")
	dir, _, err := c.Mkdir(ctx, vol, "big", nfsclient.SetAttr{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 10000
	// Create through NFS, 32 calls in flight on one connection.
	errs := make(chan error, n)
	sem := make(chan struct{}, 32)
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		go func(i int) {
			defer func() { <-sem }()
			_, _, err := c.Create(ctx, dir, fmt.Sprintf("file-%05d", i), nfsclient.Unchecked, nfsclient.SetAttr{})
			errs <- err
		}(i)
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, plus := range []bool{false, true} {
		entries, err := c.ReadDir(ctx, dir, plus)
		if err != nil {
			t.Fatalf("plus=%v: %v", plus, err)
		}
		var names []string
		for _, e := range entries {
			if e.Name == "." || e.Name == ".." {
				continue
			}
			names = append(names, e.Name)
			if plus && (e.Attr == nil || e.Handle == nil || e.Attr.Type != nfsclient.TypeReg) {
				t.Fatalf("READDIRPLUS entry %s lacks attributes or handle", e.Name)
			}
		}
		sort.Strings(names)
		if len(names) != n {
			t.Fatalf("plus=%v: listed %d entries, want %d", plus, len(names), n)
		}
		for i, name := range names {
			if name != fmt.Sprintf("file-%05d", i) {
				t.Fatalf("plus=%v: entry %d is %q", plus, i, name)
			}
		}
	}
}

func TestAccessFollowsModeBits(t *testing.T) {
	root := t.TempDir()
	d := start(t, root)
	ctx := ctx(t)
	owner := dial(t, d, 1000, 1000)
	other := dial(t, d, 1001, 1001)
	vol := mount(t, owner, "default")
	f, _, err := owner.Create(ctx, vol, "f", nfsclient.Guarded, nfsclient.SetAttr{Mode: nfsclient.U32(0o644)})
	if err != nil {
		t.Fatal(err)
	}
	const all = 0x3f
	const read, modify, extend, execute = 0x01, 0x04, 0x08, 0x20
	if got, _ := owner.Access(ctx, f, all); got != read|modify|extend {
		t.Fatalf("owner ACCESS = %#x", got)
	}
	if got, _ := other.Access(ctx, f, all); got != read {
		t.Fatalf("other ACCESS = %#x, want read only", got)
	}
	if got, _ := other.Access(ctx, f, modify); got != 0 {
		t.Fatalf("ACCESS echoed the request: %#x", got)
	}
	if _, err := owner.SetAttr(ctx, f, nfsclient.SetAttr{Mode: nfsclient.U32(0o755)}); err != nil {
		t.Fatal(err)
	}
	if got, _ := other.Access(ctx, f, all); got != read|execute {
		t.Fatalf("other ACCESS after chmod 755 = %#x", got)
	}
}

func TestIdentityAndPermissions(t *testing.T) {
	root := t.TempDir()
	d := start(t, root)
	ctx := ctx(t)
	disk := filepath.Join(root, "volumes", "default")
	alice := dial(t, d, 1000, 1000)
	bob := dial(t, d, 1001, 1001)
	vol := mount(t, alice, "default")

	f, _, err := alice.Create(ctx, vol, "alice.txt", nfsclient.Guarded, nfsclient.SetAttr{Mode: nfsclient.U32(0o644)})
	if err != nil {
		t.Fatal(err)
	}
	st := lstat(t, filepath.Join(disk, "alice.txt"))
	if st.Uid != 1000 || st.Gid != 1000 {
		t.Fatalf("file created by 1000:1000 is owned by %d:%d", st.Uid, st.Gid)
	}
	home, _, err := alice.Mkdir(ctx, vol, "home", nfsclient.SetAttr{Mode: nfsclient.U32(0o755)})
	if err != nil {
		t.Fatal(err)
	}
	if st := lstat(t, filepath.Join(disk, "home")); st.Uid != 1000 {
		t.Fatalf("dir owner %d", st.Uid)
	}
	// bob may read but not write alice's file, nor create in her directory
	if _, _, err := bob.Read(ctx, f, 0, 10); err != nil {
		t.Fatalf("bob read: %v", err)
	}
	if _, err := bob.Write(ctx, f, 0, []byte("x"), nfsclient.FileSync); !isStatus(err, wire.ErrAccess) {
		t.Fatalf("bob write to 0644 file of alice: %v, want ACCES", err)
	}
	if _, _, err := bob.Create(ctx, home, "bob.txt", nfsclient.Guarded, nfsclient.SetAttr{}); !isStatus(err, wire.ErrAccess) {
		t.Fatalf("bob create in alice's 0755 dir: %v, want ACCES", err)
	}
	if _, err := bob.SetAttr(ctx, f, nfsclient.SetAttr{Mode: nfsclient.U32(0o777)}); !isStatus(err, wire.ErrPerm) {
		t.Fatalf("bob chmod of alice's file: %v, want PERM", err)
	}
	if _, err := alice.SetAttr(ctx, f, nfsclient.SetAttr{UID: nfsclient.U32(1001)}); !isStatus(err, wire.ErrPerm) {
		t.Fatalf("alice chown to bob: %v, want PERM", err)
	}
	// the owner may still write a file she made read-only (owner override)
	if _, err := alice.SetAttr(ctx, f, nfsclient.SetAttr{Mode: nfsclient.U32(0o444)}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Write(ctx, f, 0, []byte("still mine"), nfsclient.Unstable); err != nil {
		t.Fatalf("owner write to own 0444 file: %v", err)
	}
	// links and renames run as the caller too
	if err := alice.Link(ctx, f, home, "alias"); err != nil {
		t.Fatalf("alice links her file into her dir: %v", err)
	}
	// (EPERM when protected_hardlinks forbids linking another's file)
	if err := bob.Link(ctx, f, home, "bob-alias"); !isStatus(err, wire.ErrAccess) && !isStatus(err, wire.ErrPerm) {
		t.Fatalf("bob links into alice's 0755 dir: %v, want ACCES or PERM", err)
	}
	if err := bob.Rename(ctx, home, "alias", vol, "stolen"); !isStatus(err, wire.ErrAccess) {
		t.Fatalf("bob renames out of alice's dir: %v, want ACCES", err)
	}
	// sticky /tmp-like directory: bob cannot remove alice's file
	tmp, _, err := alice.Mkdir(ctx, vol, "tmp", nfsclient.SetAttr{Mode: nfsclient.U32(0o1777)})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := alice.Create(ctx, tmp, "a", nfsclient.Guarded, nfsclient.SetAttr{}); err != nil {
		t.Fatal(err)
	}
	if err := bob.Remove(ctx, tmp, "a"); !isStatus(err, wire.ErrPerm) && !isStatus(err, wire.ErrAccess) {
		t.Fatalf("bob removed alice's file from a sticky dir: %v", err)
	}
}

func TestSquashAndReadOnly(t *testing.T) {
	root := t.TempDir()
	d := start(t, root)
	ctx := ctx(t)
	for _, tc := range []struct {
		vol      string
		opts     func(o *exportsOptions)
		uid      uint32
		wantUID  uint32
		readOnly bool
	}{
		{vol: "nosquash", opts: func(o *exportsOptions) {}, uid: 0, wantUID: 0},
		{vol: "rootsquash", opts: func(o *exportsOptions) { o.Squash = "root" }, uid: 0, wantUID: 65534},
		{vol: "rootsquash-user", opts: func(o *exportsOptions) { o.Squash = "root" }, uid: 1000, wantUID: 1000},
		{vol: "allsquash", opts: func(o *exportsOptions) { o.Squash = "all"; o.AnonUID = 4242; o.AnonGID = 4242 }, uid: 1000, wantUID: 4242},
		{vol: "readonly", opts: func(o *exportsOptions) { o.ReadOnly = true }, uid: 0, readOnly: true},
	} {
		t.Run(tc.vol, func(t *testing.T) {
			o := defaultOptions()
			tc.opts(&o)
			if _, err := d.Table.Create(tc.vol, o); err != nil {
				t.Fatal(err)
			}
			c := dial(t, d, tc.uid, tc.uid)
			vol := mount(t, c, tc.vol)
			_, _, err := c.Create(ctx, vol, "f", nfsclient.Guarded, nfsclient.SetAttr{Mode: nfsclient.U32(0o644)})
			if tc.readOnly {
				if !isStatus(err, wire.ErrROFS) {
					t.Fatalf("create on read-only volume: %v, want ROFS", err)
				}
				if _, err := c.SetAttr(ctx, vol, nfsclient.SetAttr{Mode: nfsclient.U32(0o700)}); !isStatus(err, wire.ErrROFS) {
					t.Fatalf("setattr on read-only volume: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			st := lstat(t, filepath.Join(root, "volumes", tc.vol, "f"))
			if st.Uid != tc.wantUID {
				t.Fatalf("uid %d created a file owned by %d, want %d", tc.uid, st.Uid, tc.wantUID)
			}
		})
	}
}

// Root squash squashes gid 0 wherever the credential carries it: a
// uid-1000 caller listing group 0 among its supplementary groups gets no
// group-0 rights, neither in the server's own checks (READ, WRITE,
// ACCESS) nor in the kernel's (creating in a root:root 0770 directory).
func TestRootSquashSquashesSupplementaryGroupZero(t *testing.T) {
	root := t.TempDir()
	d := start(t, root)
	ctx := ctx(t)
	o := defaultOptions()
	o.Squash = "root"
	if _, err := d.Table.Create("rs", o); err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(root, "volumes", "rs")
	if err := os.WriteFile(filepath.Join(disk, "secret"), []byte("root only"), 0o660); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(disk, "secret"), 0o660) // whatever the umask
	if err := os.Mkdir(filepath.Join(disk, "private"), 0o770); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(disk, "private"), 0o770)

	c, err := nfsclient.Dial(ctx, d.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetCred(1000, 1000, 0)
	vol := mount(t, c, "rs")
	f, _, err := c.Lookup(ctx, vol, "secret")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Read(ctx, f, 0, 100); !isStatus(err, wire.ErrAccess) {
		t.Fatalf("READ of a root:root 0660 file with groups [0] on a root-squashed volume: %v, want ACCES", err)
	}
	if _, err := c.Write(ctx, f, 0, []byte("x"), nfsclient.FileSync); !isStatus(err, wire.ErrAccess) {
		t.Fatalf("WRITE: %v, want ACCES", err)
	}
	if got, err := c.Access(ctx, f, 0x3f); err != nil || got&(0x01|0x04) != 0 {
		t.Fatalf("ACCESS = %#x, %v: want neither read nor modify", got, err)
	}
	dir, _, err := c.Lookup(ctx, vol, "private")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Create(ctx, dir, "x", nfsclient.Guarded, nfsclient.SetAttr{}); !isStatus(err, wire.ErrAccess) {
		t.Fatalf("CREATE in a root:root 0770 directory: %v, want ACCES", err)
	}
	// Without squashing, group 0 is the caller's to use.
	if _, err := d.Table.Create("open", defaultOptions()); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "volumes", "open", "shared"), []byte("group 0"), 0o660)
	os.Chmod(filepath.Join(root, "volumes", "open", "shared"), 0o660)
	ovol := mount(t, c, "open")
	g, _, err := c.Lookup(ctx, ovol, "shared")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Read(ctx, g, 0, 100); err != nil {
		t.Fatalf("READ with groups [0] on an unsquashed volume: %v", err)
	}
}

// UpdateVolume reaches a client that is already using the volume: its
// next call through handles it holds runs under the new options.
func TestUpdateVolumeLive(t *testing.T) {
	d := start(t, t.TempDir())
	ctx := ctx(t)
	if _, _, err := d.Table.CreateVolume(ctx, exports.CreateRequest{ID: "live", Options: exports.DefaultOptions()}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, d, 1000, 1000)
	vol := mount(t, c, "live")
	f, _, err := c.Create(ctx, vol, "f", nfsclient.Guarded, nfsclient.SetAttr{Mode: nfsclient.U32(0o666)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(ctx, f, 0, []byte("before"), nfsclient.FileSync); err != nil {
		t.Fatal(err)
	}
	ro := true
	if _, err := d.Table.UpdateVolume("live", exports.VolumeUpdate{ReadOnly: &ro}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(ctx, f, 0, []byte("after"), nfsclient.FileSync); !isStatus(err, wire.ErrROFS) {
		t.Fatalf("write after the volume became read-only: %v, want ROFS", err)
	}
	if _, _, err := c.Create(ctx, vol, "g", nfsclient.Guarded, nfsclient.SetAttr{}); !isStatus(err, wire.ErrROFS) {
		t.Fatalf("create after the volume became read-only: %v, want ROFS", err)
	}
	others := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	if _, err := d.Table.UpdateVolume("live", exports.VolumeUpdate{Clients: &others}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Read(ctx, f, 0, 16); !isStatus(err, wire.ErrAccess) {
		t.Fatalf("read from a client no longer allowed: %v, want ACCES", err)
	}
	rw, anyone := false, []netip.Prefix{}
	if _, err := d.Table.UpdateVolume("live", exports.VolumeUpdate{ReadOnly: &rw, Clients: &anyone}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(ctx, f, 0, []byte("again"), nfsclient.FileSync); err != nil {
		t.Fatalf("write once allowed again: %v", err)
	}
}
