package e2e

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

func owner(t *testing.T, path string) (uint32, uint32) {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	s := st.Sys().(*syscall.Stat_t)
	return s.Uid, s.Gid
}

// TestPermissionsAndSquash: identities cross the wire as AUTH_SYS and
// nfsd acts as them. A uid 1000 process makes files owned 1000:1000 on
// the server's disk and is refused where the mode bits say so; on a
// root_squash volume root on the node becomes the anonymous user.
func TestPermissionsAndSquash(t *testing.T) {
	b := newBed(t, 1)
	if _, err := b.admin("create", "sq", "0", "squash=root", "mode=1777"); err != nil {
		t.Fatal(err)
	}
	n := b.nodes[0]
	n.mount("default", "vers=3")
	n.mount("sq", "vers=3")
	as1000 := "e2enode asuser -u 1000 -g 1000 -- sh -c "
	n.must("mkdir -p /mnt/default/shared && chmod 1777 /mnt/default/shared && echo root > /mnt/default/shared/rootfile && chmod 644 /mnt/default/shared/rootfile && "+
		"echo secret > /mnt/default/shared/secret && chmod 600 /mnt/default/shared/secret && mkdir /mnt/default/shared/rootdir && chmod 755 /mnt/default/shared/rootdir", 30*time.Second)
	n.must(as1000+"'echo mine > /mnt/default/shared/u1000 && mkdir /mnt/default/shared/u1000d && id'", 30*time.Second)
	for _, p := range []string{"shared/u1000", "shared/u1000d"} {
		if u, g := owner(t, b.volPath("default")+"/"+p); u != 1000 || g != 1000 {
			t.Errorf("%s made by uid 1000 is owned %d:%d on the server", p, u, g)
		}
	}
	if u, g := owner(t, b.volPath("default")+"/shared/rootfile"); u != 0 || g != 0 {
		t.Errorf("root's file on a no-squash volume is owned %d:%d", u, g)
	}
	// Denied where mode bits say so: writing root's 0644 file, reading
	// root's 0600 file, creating in root's 0755 directory.
	for _, c := range []string{
		"echo x >> /mnt/default/shared/rootfile",
		"cat /mnt/default/shared/secret",
		"echo x > /mnt/default/shared/rootdir/nope",
	} {
		out, rc, err := n.sh(as1000+"'"+c+"'", 30*time.Second)
		if err != nil || rc == 0 || !strings.Contains(out, "Permission denied") {
			t.Errorf("uid 1000: %q: rc=%d err=%v, want Permission denied:\n%s", c, rc, err, out)
		}
	}
	if _, err := os.Stat(b.volPath("default") + "/shared/rootdir/nope"); err == nil {
		t.Errorf("uid 1000 created a file in a directory it cannot write")
	}
	// root_squash: root on the node is nobody (65534) on the server.
	n.must("echo squashed > /mnt/sq/byroot && mkdir /mnt/sq/dbyroot", 30*time.Second)
	for _, p := range []string{"byroot", "dbyroot"} {
		if u, g := owner(t, b.volPath("sq")+"/"+p); u != 65534 || g != 65534 {
			t.Errorf("on the root_squash volume, root's %s is owned %d:%d, want 65534:65534", p, u, g)
		}
	}
	// ...and so cannot read a root-only file there, nor chown to itself.
	if err := os.WriteFile(b.volPath("sq")+"/rootonly", []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, rc, err := n.sh("cat /mnt/sq/rootonly", 30*time.Second)
	if err != nil || rc == 0 || !strings.Contains(out, "Permission denied") {
		t.Errorf("squashed root read a 0600 root file: rc=%d err=%v %q", rc, err, out)
	}
	out, rc, err = n.sh("chown 0:0 /mnt/sq/byroot", 30*time.Second)
	if err != nil || rc == 0 {
		t.Errorf("squashed root chowned a file to root: rc=%d err=%v %q", rc, err, out)
	}
	if u, _ := owner(t, b.volPath("sq")+"/byroot"); u != 65534 {
		t.Errorf("byroot now owned by %d", u)
	}

	// Root on the node cannot leave a set-uid file or a device node (the
	// volume does not allow them: docs/design.md, "The host and the
	// volumes tree"); set-gid on a directory stays.
	n.must("cp /bin/true /mnt/default/suid && chmod 4755 /mnt/default/suid && mkdir /mnt/default/sgid && chmod 2775 /mnt/default/sgid", 30*time.Second)
	for p, want := range map[string]os.FileMode{"suid": 0o755, "sgid": 0o775 | os.ModeSetgid | os.ModeDir} {
		st, err := os.Lstat(b.volPath("default") + "/" + p)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode()&^os.ModeType | st.Mode()&os.ModeDir; got != want {
			t.Errorf("%s on the server: mode %v, want %v", p, got, want)
		}
	}
	out, rc, err = n.sh("mknod /mnt/default/null c 1 3", 30*time.Second)
	if err != nil || rc == 0 || !strings.Contains(out, "not permitted") {
		t.Errorf("root on the node made a device node: rc=%d err=%v %q", rc, err, out)
	}
}
