package images

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// TestCtrImport hands the tarballs of make images to a real consumer:
// Debian's containerd (unpacked from its .deb, run with a private root,
// state and socket, no CRI) imports each with `ctr images import`,
// unpacks it into a snapshot, and the programs in the unpacked trees run.
// make images-check runs it (RWXNFS_IMAGES_CHECK=1); it needs root.
func TestCtrImport(t *testing.T) {
	if os.Getenv("RWXNFS_IMAGES_CHECK") != "1" {
		t.Skip("set RWXNFS_IMAGES_CHECK=1 (make images-check) to import the images into containerd")
	}
	if os.Geteuid() != 0 {
		t.Fatal("needs root (containerd)")
	}
	dir, tag := os.Getenv("RWXNFS_IMAGES_DIR"), os.Getenv("RWXNFS_IMAGES_TAG")
	tars, _ := filepath.Glob(filepath.Join(dir, "*.tar"))
	if len(tars) == 0 || tag == "" {
		t.Fatalf("no image tarballs in RWXNFS_IMAGES_DIR=%q (tag %q)", dir, tag)
	}
	deb := &Debian{Dir: filepath.Join(dir, "debian"), Log: os.Stderr}
	croot, err := deb.Unpack("containerd")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	sock := filepath.Join(work, "containerd.sock")
	cfg := filepath.Join(work, "config.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
[ttrpc]
  address = %q
`, filepath.Join(work, "root"), filepath.Join(work, "state"), sock, sock+".ttrpc")), 0o644)
	log, _ := os.Create(filepath.Join(work, "containerd.log"))
	defer log.Close()
	cd := exec.Command(filepath.Join(croot, "usr/bin/containerd"), "--config", cfg)
	cd.Stdout, cd.Stderr = log, log
	if err := cd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cd.Process.Kill(); cd.Wait() }()
	ctr := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, filepath.Join(croot, "usr/bin/ctr"),
			append([]string{"--address", sock, "--namespace", "rwxnfs-check"}, args...)...).CombinedOutput()
		return string(out), err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if out, err := ctr("version"); err == nil && strings.Contains(out, "Server:") {
			break
		} else if time.Now().After(deadline) {
			logData, _ := os.ReadFile(filepath.Join(work, "containerd.log"))
			t.Fatalf("containerd did not start: %v %s\n%s", err, out, logData)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, tarball := range tars {
		name := strings.TrimSuffix(filepath.Base(tarball), ".tar")
		ref := Repository(name) + ":" + tag
		start := time.Now()
		out, err := ctr("images", "import", "--snapshotter", "native", tarball)
		if err != nil {
			t.Fatalf("ctr images import %s: %v\n%s", tarball, err, out)
		}
		t.Logf("imported %s in %v: %s", tarball, time.Since(start).Round(time.Millisecond), strings.TrimSpace(out))
		if out, _ := ctr("images", "ls", "-q"); !strings.Contains(out, ref) {
			t.Errorf("%s not among the imported images:\n%s", ref, out)
		}
		if out, err := ctr("images", "check"); err != nil || !strings.Contains(out, "complete") {
			t.Errorf("ctr images check: %v\n%s", err, out)
		}
		// The import unpacked the image: mount a snapshot of its root file
		// system (native snapshotter: a bind of a directory) and run what
		// it holds.
		key := "check-" + name
		if out, err := ctr("snapshots", "--snapshotter", "native", "prepare", key, chainID(t, tarball)); err != nil {
			t.Fatalf("prepare a snapshot of %s: %v\n%s", ref, err, out)
		}
		mnt := filepath.Join(work, "mnt-"+name)
		os.MkdirAll(mnt, 0o755)
		out, err = ctr("snapshots", "--snapshotter", "native", "mounts", mnt, key)
		if err != nil {
			t.Fatalf("ctr snapshots mounts: %v\n%s", err, out)
		}
		if out, err := exec.Command("sh", "-c", out).CombinedOutput(); err != nil {
			t.Fatalf("mounting the snapshot: %v\n%s", err, out)
		}
		checkUnpacked(t, name, mnt)
		exec.Command("umount", mnt).Run()
	}
}

// chainID of a one-layer image is its layer's diff ID: the name of the
// committed snapshot containerd unpacked it to.
func chainID(t *testing.T, tarball string) string {
	t.Helper()
	dir := t.TempDir()
	untar(t, tarball, dir)
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if len(cf.RootFS.DiffIDs) != 1 {
		t.Fatalf("%s has %d layers", tarball, len(cf.RootFS.DiffIDs))
	}
	return cf.RootFS.DiffIDs[0].String()
}

// checkUnpacked runs the image's programs from its unpacked tree.
func checkUnpacked(t *testing.T, name, root string) {
	t.Helper()
	switch name {
	case "nfsd":
		out, _ := exec.Command(filepath.Join(root, "usr/bin/nfsd"), "serve", "--help").CombinedOutput()
		if !strings.Contains(string(out), "-admin-listen") {
			t.Errorf("nfsd from the image did not run: %s", out)
		}
	case "csi-nfs-controller", "csi-nfs-node":
		out, _ := exec.Command(filepath.Join(root, "usr/bin/csi-nfs"), "--version").CombinedOutput()
		if len(out) == 0 {
			t.Errorf("csi-nfs from %s printed nothing for --version", name)
		}
		if name == "csi-nfs-node" {
			out, _ := exec.Command("chroot", root, "/sbin/mount.nfs", "-V").CombinedOutput()
			if !strings.Contains(string(out), "nfs-utils") {
				t.Errorf("mount.nfs in the unpacked node image: %s", out)
			}
		}
	}
}
