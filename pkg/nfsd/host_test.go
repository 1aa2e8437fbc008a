package nfsd

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/rwxnfs/rwxnfs/pkg/exports"
	"github.com/rwxnfs/rwxnfs/pkg/nfs3/wire"
	"github.com/rwxnfs/rwxnfs/pkg/nfsclient"
)

// asNobody runs a command as uid and gid 65534, a local user of the
// server host with no business in its volumes.
func asNobody(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// What clients put in a volume (the default volume's root is 0777, and
// root clients are not squashed by default) must be out of reach of other
// local users of the server host: the trees are root's alone, even where
// an older nfsd left them open, while clients, root or not, keep working.
func TestVolumesTreeClosedToLocalUsers(t *testing.T) {
	// A root every local user may enter, as /srv/rwxnfs often is; the
	// trees below it were left open (0755, 0777) by an older nfsd.
	root, err := os.MkdirTemp("", "rwxnfs-host-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	for d, mode := range map[string]os.FileMode{"": 0o755, "volumes": 0o755, "snapshots": 0o777, "retained": 0o755} {
		p := filepath.Join(root, d)
		os.MkdirAll(p, 0o700)
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	d := start(t, root)
	ctx := ctx(t)
	c := dial(t, d, 0, 0)
	vol := mount(t, c, "default")
	fh, _, err := c.Create(ctx, vol, "planted", nfsclient.Unchecked, nfsclient.SetAttr{Mode: nfsclient.U32(0o755)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(ctx, fh, 0, []byte("#!/bin/sh\necho reached\n"), nfsclient.FileSync); err != nil {
		t.Fatal(err)
	}

	for _, dir := range []string{"volumes", "snapshots", "retained", "state"} {
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(root, dir), &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode&0o7777 != 0o700 || st.Uid != 0 || st.Gid != 0 {
			t.Errorf("%s: mode %04o owner %d:%d, want 0700 0:0", dir, st.Mode&0o7777, st.Uid, st.Gid)
		}
	}
	planted := filepath.Join(root, "volumes", "default", "planted")
	if out, err := asNobody("/bin/cat", planted); err == nil || !strings.Contains(out, "Permission denied") {
		t.Errorf("a local user read %s: %v %q", planted, err, out)
	}
	if out, err := asNobody(planted); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("a local user ran %s: %v %q", planted, err, out)
	}
	if out, err := asNobody("/bin/ls", filepath.Join(root, "volumes")); err == nil {
		t.Errorf("a local user listed the volumes: %q", out)
	}

	// Clients are served as before: a non-root one makes, writes, reads
	// and mounts a subdirectory (which walks from the volume root).
	u := dial(t, d, 1000, 1000)
	uvol := mount(t, u, "default")
	if _, _, err := u.Mkdir(ctx, uvol, "sub", nfsclient.SetAttr{Mode: nfsclient.U32(0o755)}); err != nil {
		t.Fatal(err)
	}
	sub, err := u.Mount(ctx, "/volumes/default/sub")
	if err != nil {
		t.Fatal(err)
	}
	ufh, _, err := u.Create(ctx, sub, "mine", nfsclient.Guarded, nfsclient.SetAttr{Mode: nfsclient.U32(0o600)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Write(ctx, ufh, 0, []byte("still served"), nfsclient.FileSync); err != nil {
		t.Fatal(err)
	}
	if data, _, err := u.Read(ctx, ufh, 0, 100); err != nil || string(data) != "still served" {
		t.Fatalf("read %q, %v", data, err)
	}
}

// By default a client cannot leave set-uid or set-gid files or device
// nodes in a volume (CREATE, MKNOD and SETATTR modes lose the set-id
// bits on non-directories; MKNOD of a device is NFS3ERR_PERM, even for
// root); set-gid on a directory is kept. A volume whose options allow
// them keeps them.
func TestSetIDBitsAndDeviceNodes(t *testing.T) {
	d := start(t, t.TempDir())
	v, _, err := d.Table.CreateVolume(context.Background(), exports.CreateRequest{ID: "sid", Options: exports.DefaultOptions()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctx(t)
	c := dial(t, d, 0, 0)
	vol := mount(t, c, "sid")
	onDisk := func(name string) uint32 {
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(v.Dir(), name), &st); err != nil {
			t.Fatal(err)
		}
		return st.Mode & 0o7777
	}
	want := func(what string, a *nfsclient.Attr, name string, mode uint32) {
		t.Helper()
		if a == nil || a.Mode != mode || onDisk(name) != mode {
			t.Errorf("%s: attributes %+v, on disk %04o; want %04o", what, a, onDisk(name), mode)
		}
	}

	fh, a, err := c.Create(ctx, vol, "suid", nfsclient.Guarded, nfsclient.SetAttr{Mode: nfsclient.U32(0o4755)})
	if err != nil {
		t.Fatal(err)
	}
	want("CREATE 4755", a, "suid", 0o755)
	a, err = c.SetAttr(ctx, fh, nfsclient.SetAttr{Mode: nfsclient.U32(0o6755)})
	if err != nil {
		t.Fatal(err)
	}
	want("SETATTR 6755 on a file", a, "suid", 0o755)
	if _, a, err = c.MknodFifo(ctx, vol, "fifo", nfsclient.SetAttr{Mode: nfsclient.U32(0o2644)}); err != nil {
		t.Fatal(err)
	}
	want("MKNOD fifo 2644", a, "fifo", 0o644)
	dir, _, err := c.Mkdir(ctx, vol, "shared", nfsclient.SetAttr{Mode: nfsclient.U32(0o775)})
	if err != nil {
		t.Fatal(err)
	}
	a, err = c.SetAttr(ctx, dir, nfsclient.SetAttr{Mode: nfsclient.U32(0o2775)})
	if err != nil {
		t.Fatal(err)
	}
	want("SETATTR 2775 on a directory", a, "shared", 0o2775)
	for _, chr := range []bool{true, false} {
		if _, _, err := c.MknodDevice(ctx, vol, "dev", chr, 1, 3, nfsclient.SetAttr{Mode: nfsclient.U32(0o666)}); !isStatus(err, wire.ErrPerm) {
			t.Errorf("MKNOD of a device (chr %v) by root: %v, want NFS3ERR_PERM", chr, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(v.Dir(), "dev")); !os.IsNotExist(err) {
		t.Errorf("a refused MKNOD left %v", err)
	}

	allow := true
	if _, err := d.Table.UpdateVolume("sid", exports.VolumeUpdate{AllowSetID: &allow, AllowDevices: &allow}); err != nil {
		t.Fatal(err)
	}
	if a, err = c.SetAttr(ctx, fh, nfsclient.SetAttr{Mode: nfsclient.U32(0o4755)}); err != nil {
		t.Fatal(err)
	}
	want("SETATTR 4755 with allowSetID", a, "suid", 0o4755)
	if _, a, err = c.MknodDevice(ctx, vol, "null", true, 1, 3, nfsclient.SetAttr{Mode: nfsclient.U32(0o666)}); err != nil {
		t.Fatalf("MKNOD with allowDevices: %v", err)
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(v.Dir(), "null"), &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFCHR || st.Rdev != 1<<8|3 {
		t.Errorf("the device made: %+v %v", st, err)
	}
	u := dial(t, d, 1000, 1000)
	if _, _, err := u.MknodDevice(ctx, mount(t, u, "sid"), "dev2", true, 1, 3, nfsclient.SetAttr{}); !isStatus(err, wire.ErrPerm) {
		t.Errorf("MKNOD of a device by uid 1000 with allowDevices: %v, want NFS3ERR_PERM", err)
	}
	if got := d.Table.MustVolume("sid").Options; !got.AllowSetID || !got.AllowDevices {
		t.Errorf("options after update %+v", got)
	}
}
