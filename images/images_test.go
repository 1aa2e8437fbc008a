package images

import (
	"archive/tar"
	"bytes"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

func sampleRootfs(t *testing.T) *Rootfs {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "prog")
	if err := os.WriteFile(bin, []byte("#!/bin/true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := NewRootfs()
	MergedUsr(r)
	r.File("/usr/bin/prog", bin, 0o755)
	r.Data("/etc/passwd", []byte("root:x:0:0::/root:/sbin/nologin\n"), 0o644)
	r.Dir("/var/lib/nfs/sm", 0o700, 101, 65534)
	r.Dir("/tmp", fs.ModeSticky|0o777, 0, 0)
	return r
}

type tarEntry struct {
	hdr  *tar.Header
	body string
}

func readTar(t *testing.T, r io.Reader) map[string]tarEntry {
	t.Helper()
	out := map[string]tarEntry{}
	tr := tar.NewReader(r)
	var order []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		out[h.Name] = tarEntry{h, string(b)}
		order = append(order, strings.TrimSuffix(h.Name, "/"))
	}
	// A directory must come before anything in it.
	seen := map[string]bool{}
	for _, name := range order {
		if dir := filepath.Dir(name); dir != "." && !seen[dir] {
			t.Errorf("%s comes before its directory %s", name, dir)
		}
		seen[name] = true
	}
	return out
}

// TestRootfsTar: the layer holds exactly the tree, with its modes and
// owners, parents first, time stamps zero, and the same bytes every time.
func TestRootfsTar(t *testing.T) {
	r := sampleRootfs(t)
	var a, b bytes.Buffer
	if err := r.WriteTar(&a); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteTar(&b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two writes of one tree differ")
	}
	got := readTar(t, &a)
	check := func(name string, typ byte, mode int64, uid int) tarEntry {
		t.Helper()
		e, ok := got[name]
		if !ok {
			t.Fatalf("no %s in the layer", name)
		}
		if e.hdr.Typeflag != typ || e.hdr.Mode != mode || e.hdr.Uid != uid {
			t.Errorf("%s: type %c mode %o uid %d, want %c %o %d", name, e.hdr.Typeflag, e.hdr.Mode, e.hdr.Uid, typ, mode, uid)
		}
		if !e.hdr.ModTime.Equal(time.Unix(0, 0)) {
			t.Errorf("%s: mtime %v", name, e.hdr.ModTime)
		}
		return e
	}
	if e := check("usr/bin/prog", tar.TypeReg, 0o755, 0); e.body != "#!/bin/true\n" {
		t.Errorf("prog body %q", e.body)
	}
	check("usr/bin/", tar.TypeDir, 0o755, 0)
	check("var/lib/nfs/sm/", tar.TypeDir, 0o700, 101)
	check("tmp/", tar.TypeDir, 0o1777, 0)
	if e := check("sbin", tar.TypeSymlink, 0o777, 0); e.hdr.Linkname != "usr/sbin" {
		t.Errorf("sbin -> %s", e.hdr.Linkname)
	}
	if len(got) != 17 {
		t.Errorf("%d entries: %v", len(got), keys(got))
	}
}

func keys(m map[string]tarEntry) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func untar(t *testing.T, file, dir string) {
	t.Helper()
	out, err := exec.Command("tar", "-xf", file, "-C", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("tar -xf %s: %v\n%s", file, err, out)
	}
}

// TestOCITarball: the tarball is an OCI image layout that an independent
// reader (go-containerregistry's layout and validate packages) accepts:
// digests and sizes agree, media types are OCI, the index names the image
// for containerd, and the one layer holds the tree.
func TestOCITarball(t *testing.T) {
	r := sampleRootfs(t)
	img, err := Build(r, Config{Entrypoint: []string{"/usr/bin/prog"}, Labels: map[string]string{"x": "y"}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "img.tar")
	if err := WriteOCITarball(file, img, "docker.io/rwxnfs/test:1.0", "1.0"); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "layout")
	os.Mkdir(out, 0o755)
	untar(t, file, out)
	if data, err := os.ReadFile(filepath.Join(out, "oci-layout")); err != nil || !strings.Contains(string(data), "imageLayoutVersion") {
		t.Fatalf("oci-layout: %q %v", data, err)
	}
	idx, err := layout.ImageIndexFromPath(out)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("%d manifests", len(im.Manifests))
	}
	desc := im.Manifests[0]
	if desc.Annotations["io.containerd.image.name"] != "docker.io/rwxnfs/test:1.0" || desc.Annotations["org.opencontainers.image.ref.name"] != "1.0" {
		t.Errorf("annotations %v", desc.Annotations)
	}
	if desc.MediaType != types.OCIManifestSchema1 || desc.Platform == nil || desc.Platform.Architecture != "amd64" {
		t.Errorf("descriptor %+v", desc)
	}
	got, err := idx.Image(desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(got); err != nil {
		t.Fatalf("validate: %v", err)
	}
	cf, err := got.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" || strings.Join(cf.Config.Entrypoint, " ") != "/usr/bin/prog" || cf.Config.Labels["x"] != "y" {
		t.Errorf("config %+v", cf)
	}
	layers, err := got.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers %v %v", layers, err)
	}
	if mt, _ := layers[0].MediaType(); mt != types.OCILayer {
		t.Errorf("layer media type %s", mt)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if e, ok := readTar(t, rc)["usr/bin/prog"]; !ok || e.body != "#!/bin/true\n" {
		t.Errorf("prog not in the layer: %v", ok)
	}

	// Same inputs, same image.
	img2, _ := Build(sampleRootfs(t), Config{Entrypoint: []string{"/usr/bin/prog"}, Labels: map[string]string{"x": "y"}})
	d1, _ := img.Digest()
	d2, _ := img2.Digest()
	if d1 != d2 {
		t.Errorf("digests differ: %s %s", d1, d2)
	}
}

// TestELFClosure: a dynamically linked program comes with every library
// it needs and the loader, under merged-/usr paths; links stay links.
func TestELFClosure(t *testing.T) {
	r := NewRootfs()
	if err := ELF(r, "/", "/usr/bin/ls"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"/usr/bin/ls", "/usr/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib64/ld-linux-x86-64.so.2"} {
		if !r.Has(want) {
			t.Errorf("no %s in %v", want, r.Paths())
		}
	}
	if err := ELF(NewRootfs(), t.TempDir(), "/usr/bin/ls"); err == nil {
		t.Error("a program missing from the root was accepted")
	}
}

func extract(t *testing.T, r *Rootfs) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	if err := r.Extract(root); err != nil {
		t.Fatal(err)
	}
	return root
}

// TestNodeImagePrograms builds the node image's tree from Debian's
// packages (apt-get download; needs root for chroot) and runs each NFS
// helper inside it: every library resolves and the programs start.
func TestNodeImagePrograms(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (chroot)")
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Skip("no apt-get: not a Debian machine")
	}
	deb := &Debian{Dir: filepath.Join("..", "build", "images", "debian")}
	debRoot, err := deb.Unpack(NodePackages...)
	if err != nil {
		t.Fatal(err)
	}
	csi := filepath.Join(t.TempDir(), "csi-nfs")
	os.WriteFile(csi, []byte("stand-in"), 0o755)
	r, err := NodeRootfs(csi, debRoot)
	if err != nil {
		t.Fatal(err)
	}
	root := extract(t, r)
	for _, prog := range []string{"/sbin/mount.nfs", "/usr/sbin/rpc.statd", "/sbin/sm-notify", "/sbin/rpcbind", "/usr/sbin/rpcinfo", "/bin/mount", "/usr/sbin/umount.nfs", "/sbin/showmount"} {
		out, err := exec.Command("chroot", root, "/lib64/ld-linux-x86-64.so.2", "--list", prog).CombinedOutput()
		if err != nil || strings.Contains(string(out), "not found") {
			t.Errorf("%s: libraries: %v\n%s", prog, err, out)
		}
	}
	// Each starts and prints its version: the loader, libc and the
	// program's libraries all work inside the image.
	for prog, want := range map[string]string{
		"/sbin/mount.nfs":     "mount.nfs: (linux nfs-utils",
		"/sbin/rpc.statd":     "version",
		"/usr/bin/mount":      "mount from util-linux",
		"/usr/sbin/showmount": "showmount for",
	} {
		out, _ := exec.Command("chroot", root, prog, "--version").CombinedOutput()
		if prog == "/sbin/mount.nfs" {
			out, _ = exec.Command("chroot", root, prog, "-V").CombinedOutput()
		}
		if !strings.Contains(string(out), want) {
			t.Errorf("%s did not run in the image: %q", prog, out)
		}
	}
	for _, f := range []string{"/etc/netconfig", "/etc/rpc", "/etc/services", "/usr/bin/csi-nfs"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Error(err)
		}
	}
	passwd, _ := os.ReadFile(filepath.Join(root, "etc/passwd"))
	for _, user := range []string{"_rpc:", "statd:"} {
		if !strings.Contains(string(passwd), user) {
			t.Errorf("no %s account: %s", user, passwd)
		}
	}
}
