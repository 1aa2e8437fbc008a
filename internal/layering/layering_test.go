// Package layering checks the package layering that keeps protocols,
// transport and file operations apart (docs/design.md, the package map).
package layering

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

const mod = "github.com/rwxnfs/rwxnfs/"

// rules: what each package must never depend on, directly or not. A
// path ending in /... bans the package and everything below it.
var rules = []struct {
	pkg    string
	banned []string
	why    string
}{
	{"pkg/nfs3", []string{mod + "pkg/quota", mod + "pkg/fscred", mod + "pkg/exports", mod + "pkg/volfs", "golang.org/x/sys/unix", "github.com/willscott/go-nfs/..."},
		"the NFS front end is decode, one vfs call, encode: file-system rules live in pkg/volfs"},
	{"pkg/vfs", []string{mod + "pkg/exports", mod + "pkg/volfs", "golang.org/x/sys/unix"},
		"the file-operation contract is plain Go, so any front end can use it"},
	{"pkg/locking", []string{mod + "pkg/rpcserver", mod + "pkg/exports", mod + "pkg/volfs"},
		"the lock manager is a program on an rpc.Mux; it reaches files through locking.Files"},
	{"pkg/rpc", []string{mod + "pkg/rpcserver"},
		"messages, handlers and the mux are below the transport"},
	{"pkg/nfsclient", []string{mod + "pkg/nfs3", mod + "pkg/volfs", mod + "pkg/exports", mod + "pkg/rpcserver"},
		"our client shares the wire codecs, not the server"},
	{"pkg/nfs3/wire", []string{mod + "pkg/rpc", mod + "pkg/vfs"},
		"the codecs are the protocol's vocabulary only"},
}

func deps(t *testing.T, pkg string) map[string]bool {
	t.Helper()
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	out, err := exec.Command(goTool, "list", "-deps", mod+pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
	}
	m := map[string]bool{}
	for _, p := range strings.Fields(string(out)) {
		m[p] = true
	}
	return m
}

func TestLayering(t *testing.T) {
	for _, r := range rules {
		d := deps(t, r.pkg)
		for _, b := range r.banned {
			root, tree := strings.CutSuffix(b, "/...")
			for p := range d {
				if p == root || tree && strings.HasPrefix(p, root+"/") {
					t.Errorf("%s depends on %s, but must not: %s", r.pkg, p, r.why)
				}
			}
		}
	}
}
