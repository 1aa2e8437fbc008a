package e2e

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestMountPlainVers3: "mount -o vers=3" with no port options finds NFS
// and MOUNT through nfsd's portmapper; data written on the node is on
// the server's disk, and data written on the server reads back on the node.
func TestMountPlainVers3(t *testing.T) {
	b := newBed(t, 1)
	n := b.nodes[0]
	t0 := time.Now()
	n.mount("default", "vers=3")
	t.Logf("mount.nfs -o vers=3: %v", time.Since(t0).Round(time.Millisecond))
	n.must("echo hello-from-node0 > /mnt/default/hello && sync", 30*time.Second)
	data, err := os.ReadFile(b.volPath("default") + "/hello")
	if err != nil || string(data) != "hello-from-node0\n" {
		t.Fatalf("host sees %q, %v", data, err)
	}
	if err := os.WriteFile(b.volPath("default")+"/fromhost", []byte("hello-from-host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := n.must("cat /mnt/default/fromhost && cat /mnt/default/hello", 30*time.Second)
	if out != "hello-from-host\nhello-from-node0\n" {
		t.Fatalf("node reads %q", out)
	}
	// A bigger file round-trips byte for byte.
	out = n.must("dd if=/dev/urandom of=/tmp/big bs=64k count=64 2>/dev/null && cp /tmp/big /mnt/default/big && umount /mnt/default && "+
		"mount.nfs "+serverIP+":/volumes/default /mnt/default -o vers=3 && sha256sum /tmp/big /mnt/default/big", 120*time.Second)
	f := strings.Fields(out)
	if len(f) != 4 || f[0] != f[2] {
		t.Fatalf("checksums differ after remount: %q", out)
	}
	host, err := run("sha256sum", b.volPath("default")+"/big")
	if err != nil || strings.Fields(host)[0] != f[0] {
		t.Fatalf("host checksum %q, node %q (%v)", host, f[0], err)
	}
}
