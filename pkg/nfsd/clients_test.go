package nfsd

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gonfs "github.com/willscott/go-nfs-client/nfs"
	gorpc "github.com/willscott/go-nfs-client/nfs/rpc"
)

// libnfsURL addresses a path in a volume for the libnfs tools, with the
// ports given so no portmapper on 111 is needed.
func libnfsURL(d *Daemon, vol, path string) string {
	return fmt.Sprintf("nfs://127.0.0.1/volumes/%s/%s?version=3&nfsport=%d&mountport=%d", vol, path, d.Port(), d.Port())
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestLibnfs100MiB(t *testing.T) {
	cp := need(t, "nfs-cp")
	root := t.TempDir()
	d := start(t, root)
	src := filepath.Join(t.TempDir(), "src.bin")
	data := make([]byte, 100<<20)
	rand.Read(data)
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(data)

	t0 := time.Now()
	run(t, cp, src, libnfsURL(d, "default", "big.bin"))
	wt := time.Since(t0)
	onDisk, err := os.ReadFile(filepath.Join(root, "volumes/default/big.bin"))
	if err != nil || sha256.Sum256(onDisk) != want {
		t.Fatalf("file on the server differs from what nfs-cp wrote (%v)", err)
	}
	dst := filepath.Join(t.TempDir(), "dst.bin")
	t0 = time.Now()
	run(t, cp, libnfsURL(d, "default", "big.bin"), dst)
	rt := time.Since(t0)
	back, err := os.ReadFile(dst)
	if err != nil || sha256.Sum256(back) != want {
		t.Fatalf("nfs-cp read back different data (%v)", err)
	}
	t.Logf("nfs-cp 100 MiB: write %.0f MB/s, read %.0f MB/s (informational, not asserted)",
		100*1.048576/wt.Seconds(), 100*1.048576/rt.Seconds())
}

func TestLibnfsListAndCat(t *testing.T) {
	ls := need(t, "nfs-ls")
	cat := need(t, "nfs-cat")
	root := t.TempDir()
	d := start(t, root)
	dir := filepath.Join(root, "volumes/default/many")
	os.Mkdir(dir, 0o755)
	const n = 10000
	for i := 0; i < n; i++ {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(root, "volumes/default/hello.txt"), []byte("hello from rwxnfs\n"), 0o644)
	out := run(t, ls, libnfsURL(d, "default", "many"))
	count := 0
	seen := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		name := f[len(f)-1]
		if strings.HasPrefix(name, "f") && !seen[name] {
			seen[name] = true
			count++
		}
	}
	if count != n {
		t.Fatalf("nfs-ls listed %d distinct files, want %d", count, n)
	}
	if got := run(t, cat, libnfsURL(d, "default", "hello.txt")); got != "hello from rwxnfs\n" {
		t.Fatalf("nfs-cat: %q", got)
	}
}

// TestGoNFSClient drives the server with go-nfs-client, a client we did
// not write.
func TestGoNFSClient(t *testing.T) {
	root := t.TempDir()
	d := start(t, root)
	mc, err := gonfs.DialServiceAtPort("127.0.0.1", d.Port())
	if err != nil {
		t.Fatal(err)
	}
	m := &gonfs.Mount{Client: mc}
	defer m.Close()
	auth := gorpc.NewAuthUnix("gotest", 1000, 1000)
	target, err := m.Mount("/volumes/default", auth.Auth())
	if err != nil {
		t.Fatalf("mount: %v", err)
	}
	defer target.Close()
	if _, err := target.Mkdir("docs", 0o755); err != nil {
		t.Fatalf("mkdir: %v", err)
	}
	w, err := target.OpenFile("docs/report.txt", 0o644)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	payload := bytes.Repeat([]byte("rwxnfs "), 50000) // 350 kB: several WRITEs
	if _, err := w.Write(payload); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	r, err := target.Open("docs/report.txt")
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("read back %d bytes, err %v", len(got), err)
	}
	st, err := os.Stat(filepath.Join(root, "volumes/default/docs/report.txt"))
	if err != nil || st.Sys().(interface{}) == nil {
		t.Fatal(err)
	}
	if uid := lstat(t, filepath.Join(root, "volumes/default/docs/report.txt")).Uid; uid != 1000 {
		t.Fatalf("go-nfs-client as uid 1000 created a file owned by %d", uid)
	}
	entries, err := target.ReadDirPlus("docs")
	if err != nil {
		t.Fatalf("readdirplus: %v", err)
	}
	found := false
	for _, e := range entries {
		if e.Name() == "report.txt" && e.Size() == int64(len(payload)) {
			found = true
		}
	}
	if !found {
		t.Fatalf("READDIRPLUS did not list report.txt with its size: %v", entries)
	}
	if err := target.Remove("docs/report.txt"); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if err := target.RmDir("docs"); err != nil {
		t.Fatalf("rmdir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "volumes/default/docs")); !os.IsNotExist(err) {
		t.Fatalf("docs still on disk: %v", err)
	}
}
