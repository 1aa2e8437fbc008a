package nfsd

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rwxnfs/rwxnfs/internal/rpctest"
	"github.com/rwxnfs/rwxnfs/pkg/exports"
	"github.com/rwxnfs/rwxnfs/pkg/nfs3/wire"
	"github.com/rwxnfs/rwxnfs/pkg/nfsclient"
)

func TestHandlesSurviveRestartAndRename(t *testing.T) {
	root := t.TempDir()
	d := start(t, root)
	c := dial(t, d, 0, 0)
	ctx := ctx(t)
	vol := mount(t, c, "default")
	a, _, err := c.Mkdir(ctx, vol, "a", nfsclient.SetAttr{})
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := c.Mkdir(ctx, a, "b", nfsclient.SetAttr{})
	if err != nil {
		t.Fatal(err)
	}
	f, _, err := c.Create(ctx, b, "f", nfsclient.Guarded, nfsclient.SetAttr{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(ctx, f, 0, []byte("payload"), nfsclient.FileSync); err != nil {
		t.Fatal(err)
	}
	gone, _, err := c.Create(ctx, vol, "gone", nfsclient.Guarded, nfsclient.SetAttr{})
	if err != nil {
		t.Fatal(err)
	}

	// Restart: a brand-new daemon over the same directory.
	stop(t, d)
	d2 := start(t, root)
	c2 := dial(t, d2, 0, 0)
	if data, _, err := c2.Read(ctx, f, 0, 100); err != nil || string(data) != "payload" {
		t.Fatalf("READ with a handle from before the restart: %q %v", data, err)
	}
	if vol2 := mount(t, c2, "default"); !bytes.Equal(vol, vol2) {
		t.Fatal("the volume's root handle changed across a restart")
	}

	// Rename a parent (on the server side, too: handles do not depend on
	// how the change was made).
	if err := c2.Rename(ctx, vol, "a", vol, "a-renamed"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(root, "volumes/default/a-renamed/b"), filepath.Join(root, "volumes/default/a-renamed/b2")); err != nil {
		t.Fatal(err)
	}
	if data, _, err := c2.Read(ctx, f, 0, 100); err != nil || string(data) != "payload" {
		t.Fatalf("READ after renaming both parents: %q %v", data, err)
	}
	if _, err := c2.GetAttr(ctx, b); err != nil {
		t.Fatalf("GETATTR of renamed dir: %v", err)
	}
	// Removed: STALE, also after another restart.
	if err := c2.Remove(ctx, vol, "gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.GetAttr(ctx, gone); !isStatus(err, wire.ErrStale) {
		t.Fatalf("GETATTR of removed file: %v, want STALE", err)
	}
	stop(t, d2)
	d3 := start(t, root)
	c3 := dial(t, d3, 0, 0)
	if _, err := c3.GetAttr(ctx, gone); !isStatus(err, wire.ErrStale) {
		t.Fatalf("GETATTR of removed file after restart: %v, want STALE", err)
	}
	if _, err := c3.GetAttr(ctx, f); err != nil {
		t.Fatalf("GETATTR after second restart: %v", err)
	}
}

func TestHandlesAreNotEvicted(t *testing.T) {
	root := t.TempDir()
	d, err := Start(Config{Root: root, Listen: "127.0.0.1:0", DefaultVolume: "default", Log: rpctest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(t, d) })
	// Replace the table's cache bound by using far more files than it
	// holds is slow; instead check that every handle resolves after the
	// cache has been cycled many times over by a small table.
	small, err := exports.Open(exports.Config{Root: root, Log: rpctest.Logger(t), MaxOpenNodes: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	c := dial(t, d, 0, 0)
	ctx := ctx(t)
	vol := mount(t, c, "default")
	var handles [][]byte
	for i := 0; i < 200; i++ {
		fh, _, err := c.Create(ctx, vol, "f"+string(rune('A'+i%26))+string(rune('a'+i/26)), nfsclient.Guarded, nfsclient.SetAttr{})
		if err != nil {
			t.Fatal(err)
		}
		handles = append(handles, fh)
	}
	for round := 0; round < 3; round++ {
		for i, h := range handles {
			n, err := small.Resolve(h)
			if err != nil {
				t.Fatalf("round %d handle %d: %v", round, i, err)
			}
			small.Release(n)
		}
	}
	if got := small.CachedNodes(); got > 8 {
		t.Fatalf("cache holds %d nodes, bound is 8", got)
	}
}

func TestForgedAndForeignHandles(t *testing.T) {
	root := t.TempDir()
	d := start(t, root)
	ctx := ctx(t)
	o := exports.DefaultOptions()
	o.Clients, _ = exports.ParseClients("127.0.0.2/32")
	if _, err := d.Table.Create("private", o); err != nil {
		t.Fatal(err)
	}
	c := dialFrom(t, d, "127.0.0.1")
	vol := mount(t, c, "default")

	// ".." at the root is the root: no way up to ROOT/volumes or ROOT/state.
	up, _, err := c.Lookup(ctx, vol, "..")
	if err != nil || !bytes.Equal(up, vol) {
		t.Fatalf("LOOKUP .. at the volume root: %v, same=%v", err, bytes.Equal(up, vol))
	}
	entries, err := c.ReadDir(ctx, vol, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name == ".." && !bytes.Equal(e.Handle, vol) {
			t.Fatal("READDIRPLUS gives a handle for the volume's parent")
		}
	}
	for _, name := range []string{"a/b", "../state", "x\x00y"} {
		if _, _, err := c.Lookup(ctx, vol, name); err == nil {
			t.Fatalf("LOOKUP %q succeeded", name)
		}
		if _, _, err := c.Create(ctx, vol, name, nfsclient.Guarded, nfsclient.SetAttr{}); err == nil {
			t.Fatalf("CREATE %q succeeded", name)
		}
	}

	// Forged handles: any flipped bit is caught.
	f, _, err := c.Create(ctx, vol, "f", nfsclient.Guarded, nfsclient.SetAttr{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range f {
		bad := bytes.Clone(f)
		bad[i] ^= 0x01
		_, err := c.GetAttr(ctx, bad)
		if !isStatus(err, wire.ErrBadHandle) && !isStatus(err, wire.ErrStale) {
			t.Fatalf("handle with byte %d flipped: %v, want BADHANDLE or STALE", i, err)
		}
	}
	if _, err := c.GetAttr(ctx, []byte("short")); !isStatus(err, wire.ErrBadHandle) {
		t.Fatalf("short handle: %v", err)
	}

	// A handle of a volume whose allow-list excludes this client: denied
	// at MOUNT and at every NFS call, even with the real root handle.
	if _, err := c.Mount(ctx, "/volumes/private"); err == nil {
		t.Fatal("MNT of a volume whose allow-list excludes the client succeeded")
	}
	privRoot := d.Table.MustVolume("private").Root().Handle
	if _, err := c.GetAttr(ctx, privRoot); !isStatus(err, wire.ErrAccess) {
		t.Fatalf("GETATTR with a foreign volume's handle: %v, want ACCES", err)
	}
	if _, _, err := c.Create(ctx, privRoot, "x", nfsclient.Guarded, nfsclient.SetAttr{}); !isStatus(err, wire.ErrAccess) {
		t.Fatalf("CREATE in a foreign volume: %v, want ACCES", err)
	}
	// ... while a client on the list gets in.
	allowed := dialFrom(t, d, "127.0.0.2")
	if _, err := allowed.Mount(ctx, "/volumes/private"); err != nil {
		t.Fatalf("MNT from an allowed client: %v", err)
	}
	if _, err := allowed.GetAttr(ctx, privRoot); err != nil {
		t.Fatalf("GETATTR from an allowed client: %v", err)
	}
	// Moving files across volumes is refused.
	if err := allowed.Rename(ctx, vol, "f", privRoot, "f"); !isStatus(err, wire.ErrXDev) {
		t.Fatalf("RENAME across volumes: %v, want XDEV", err)
	}
	if err := allowed.Link(ctx, f, privRoot, "f"); !isStatus(err, wire.ErrXDev) {
		t.Fatalf("LINK across volumes: %v, want XDEV", err)
	}
	// Each volume is its own file system to clients.
	a1, _ := allowed.GetAttr(ctx, vol)
	a2, _ := allowed.GetAttr(ctx, privRoot)
	if a1.FSID == a2.FSID {
		t.Fatal("two volumes report the same fsid")
	}
	// Unknown volumes at MOUNT.
	if _, err := c.Mount(ctx, "/volumes/nope"); err == nil {
		t.Fatal("MNT of an unknown volume succeeded")
	}
	if _, err := c.Mount(ctx, "/state"); err == nil {
		t.Fatal("MNT of the state directory succeeded")
	}
}

func TestMountSubdirectory(t *testing.T) {
	root := t.TempDir()
	d := start(t, root)
	ctx := ctx(t)
	disk := filepath.Join(root, "volumes/default")
	os.MkdirAll(filepath.Join(disk, "a/b"), 0o755)
	os.WriteFile(filepath.Join(disk, "a/b/f"), []byte("x"), 0o644)
	os.Symlink("/", filepath.Join(disk, "escape"))
	os.WriteFile(filepath.Join(disk, "plain"), nil, 0o644)
	c := dial(t, d, 0, 0)
	fh, err := c.Mount(ctx, "/volumes/default/a/b")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Lookup(ctx, fh, "f"); err != nil {
		t.Fatalf("LOOKUP in a mounted subdirectory: %v", err)
	}
	for _, p := range []string{"/volumes/default/escape", "/volumes/default/../../state", "/volumes/default/a/..", "/volumes/default/plain", "/volumes/default/nope"} {
		if _, err := c.Mount(ctx, p); err == nil {
			t.Fatalf("MNT %s succeeded", p)
		}
	}
}

// sealWithKey builds an NFS handle the way the server does (docs/design.md,
// "File handles"), with the server's own key: what someone who stole
// ROOT/state/handle.key could make.
func sealWithKey(t *testing.T, key []byte, fsid uint64, path string) []byte {
	t.Helper()
	kh, _, err := unix.NameToHandleAt(unix.AT_FDCWD, path, 0)
	if err != nil {
		t.Fatal(err)
	}
	h := []byte{1, byte(len(kh.Bytes()))}
	h = binary.BigEndian.AppendUint64(h, fsid)
	h = binary.BigEndian.AppendUint32(h, uint32(kh.Type()))
	h = append(h, kh.Bytes()...)
	m := hmac.New(sha256.New, key)
	m.Write(h)
	return append(h, m.Sum(nil)[:8]...)
}

// Defense in depth: a handle sealed with the right key but naming an
// inode outside its volume (another volume, ROOT/state, the host's own
// directories) is refused with NFS3ERR_STALE, so a leaked key does not
// open the backing file system. Handles of what is inside still work.
func TestSealedHandleOutsideVolume(t *testing.T) {
	root := t.TempDir()
	d := start(t, root)
	ctx := ctx(t)
	if _, err := d.Table.Create("other", exports.DefaultOptions()); err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(filepath.Join(root, "state", "handle.key"))
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, d, 0, 0)
	vol := mount(t, c, "default")
	if _, _, err := c.Mkdir(ctx, vol, "in", nfsclient.SetAttr{}); err != nil {
		t.Fatal(err)
	}
	def := d.Table.MustVolume("default")
	other := d.Table.MustVolume("other")
	os.MkdirAll(filepath.Join(def.Dir(), "in", "deeper", "still"), 0o755)
	os.WriteFile(filepath.Join(def.Dir(), "in", "deeper", "f"), []byte("inside"), 0o644)
	os.MkdirAll(filepath.Join(other.Dir(), "d"), 0o755)
	os.WriteFile(filepath.Join(other.Dir(), "secret"), []byte("other volume"), 0o644)
	outside := t.TempDir() // same file system as ROOT
	os.WriteFile(filepath.Join(outside, "host-file"), []byte("host"), 0o644)

	for _, p := range []string{"in", "in/deeper", "in/deeper/still", "in/deeper/f"} {
		h := sealWithKey(t, key, def.FSID, filepath.Join(def.Dir(), p))
		if _, err := c.GetAttr(ctx, h); err != nil {
			t.Errorf("%s, inside the volume: %v", p, err)
		}
	}
	for _, p := range []string{
		other.Dir(), filepath.Join(other.Dir(), "d"), filepath.Join(other.Dir(), "secret"),
		filepath.Join(root, "state"), filepath.Join(root, "state", "handle.key"), filepath.Join(root, "volumes"), root,
		outside, filepath.Join(outside, "host-file"), "/",
	} {
		h := sealWithKey(t, key, def.FSID, p)
		if _, err := c.GetAttr(ctx, h); !isStatus(err, wire.ErrStale) {
			t.Errorf("%s, outside the volume, sealed with the key: GETATTR %v, want NFS3ERR_STALE", p, err)
		}
		if _, _, err := c.Lookup(ctx, h, "secret"); !isStatus(err, wire.ErrStale) {
			t.Errorf("%s, outside the volume: LOOKUP %v, want NFS3ERR_STALE", p, err)
		}
	}
}
