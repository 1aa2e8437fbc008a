package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/rwxnfs/rwxnfs/internal/readme"
)

// TestREADMEMount runs README.md's first-hour lines that need a Linux NFS
// client (make test runs them through libnfs) on a node with the kernel
// client, as typed except for the server's address: the volume is
// created with the README's "nfsd admin create" line, then mkdir, mount
// -t nfs, cp, df -h and umount run on the node.
func TestREADMEMount(t *testing.T) {
	cmds, err := readme.Read()
	if err != nil {
		t.Fatal(err)
	}
	b := newBed(t, 1)
	n := b.nodes[0]
	// The node's initramfs has no /etc/services for the README's cp.
	n.must("[ -e /etc/services ] || echo 'nfs 2049/tcp' > /etc/services", 30*time.Second)
	var df string
	ran := map[string]bool{}
	for _, line := range cmds.FirstHour {
		f := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "nfsd admin create "):
			if out, err := b.admin(f[2:]...); err != nil {
				t.Fatalf("%s: %v\n%s", line, err, out)
			}
		case f[0] == "mkdir" || f[0] == "mount" || f[0] == "cp" || f[0] == "df" || f[0] == "umount":
			out := n.must(strings.ReplaceAll(line, "127.0.0.1:", serverIP+":"), 90*time.Second)
			t.Logf("%s\n%s", line, out)
			if f[0] == "df" {
				df = out
			}
		default:
			continue
		}
		ran[f[0]] = true
	}
	for _, c := range []string{"nfsd", "mkdir", "mount", "cp", "df", "umount"} {
		if !ran[c] {
			t.Errorf("the README's first hour has no %s line", c)
		}
	}
	if !strings.Contains(df, "1.0G") {
		t.Errorf("df -h on the node does not show the 1Gi quota:\n%s", df)
	}
}
