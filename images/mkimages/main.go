// Command mkimages builds rwxnfs's three container images as OCI image
// tarballs, with no container engine (make images):
//
//	nfsd.tar                 nfsd, static
//	csi-nfs-controller.tar   csi-nfs, static
//	csi-nfs-node.tar         csi-nfs, static, plus mount.nfs, rpc.statd, sm-notify,
//	                         rpcbind and util-linux mount from Debian's packages
//
// Import one on a node with `ctr -n k8s.io images import FILE`. The csi-nfs
// images need cmd/csi-nfs in the tree; without it they are skipped, named.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/rwxnfs/rwxnfs/images"
)

func main() {
	out := flag.String("out", "build/images", "directory for the tarballs and the build cache")
	tag := flag.String("tag", "", "image tag (the chart's appVersion)")
	only := flag.String("only", "", "comma-separated image names to build (default: all)")
	prebuilt := flag.String("csi-nfs", "", "a csi-nfs binary (static) to use instead of building ./cmd/csi-nfs")
	flag.Parse()
	if *tag == "" {
		fmt.Fprintln(os.Stderr, "mkimages: --tag is required")
		os.Exit(2)
	}
	if err := run(*out, *tag, *only, *prebuilt); err != nil {
		fmt.Fprintln(os.Stderr, "mkimages:", err)
		os.Exit(1)
	}
}

type image struct {
	name  string
	build func() (*images.Rootfs, error)
	cfg   images.Config
}

func run(out, tag, only, prebuilt string) error {
	start := time.Now()
	bin := filepath.Join(out, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return err
	}
	nfsd := filepath.Join(bin, "nfsd")
	if err := goBuild(nfsd, "./cmd/nfsd"); err != nil {
		return err
	}
	csi := filepath.Join(bin, "csi-nfs")
	haveCSI := true
	switch _, err := os.Stat("cmd/csi-nfs"); {
	case prebuilt != "":
		csi = prebuilt
	case err != nil:
		haveCSI = false
	default:
		if err := goBuild(csi, "./cmd/csi-nfs"); err != nil {
			return err
		}
	}
	labels := func(title string) map[string]string {
		return map[string]string{
			"org.opencontainers.image.title":   title,
			"org.opencontainers.image.version": tag,
			"org.opencontainers.image.source":  "https://github.com/rwxnfs/rwxnfs",
		}
	}
	all := []image{
		{images.NFSD, func() (*images.Rootfs, error) { return images.NFSDRootfs(nfsd), nil },
			images.Config{Entrypoint: []string{"/usr/bin/nfsd"}, Labels: labels("rwxnfs nfsd")}},
		{images.Controller, func() (*images.Rootfs, error) { return images.ControllerRootfs(csi), nil },
			images.Config{Entrypoint: []string{"/usr/bin/csi-nfs"}, Labels: labels("rwxnfs CSI controller")}},
		{images.Node, func() (*images.Rootfs, error) {
			deb := &images.Debian{Dir: filepath.Join(out, "debian"), Log: os.Stderr}
			root, err := deb.Unpack(images.NodePackages...)
			if err != nil {
				return nil, err
			}
			return images.NodeRootfs(csi, root)
		}, images.Config{Entrypoint: []string{"/usr/bin/csi-nfs"}, Labels: labels("rwxnfs CSI node plugin")}},
	}
	want := map[string]bool{}
	for _, n := range strings.Split(only, ",") {
		if n != "" {
			want[n] = true
		}
	}
	var skipped []string
	fmt.Printf("%-20s %10s %10s  %s\n", "image", "tarball", "unpacked", "file")
	for _, im := range all {
		if len(want) > 0 && !want[im.name] {
			continue
		}
		if im.name != images.NFSD && !haveCSI {
			skipped = append(skipped, im.name)
			continue
		}
		r, err := im.build()
		if err != nil {
			return fmt.Errorf("%s: %w", im.name, err)
		}
		img, err := images.Build(r, im.cfg)
		if err != nil {
			return fmt.Errorf("%s: %w", im.name, err)
		}
		path := filepath.Join(out, im.name+".tar")
		if err := images.WriteOCITarball(path, img, images.Repository(im.name)+":"+tag, tag); err != nil {
			return fmt.Errorf("%s: %w", im.name, err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			return err
		}
		unpacked, err := images.UnpackedSize(r)
		if err != nil {
			return err
		}
		fmt.Printf("%-20s %8.1f MB %8.1f MB  %s (%s:%s)\n", im.name, mb(fi.Size()), mb(unpacked), path, images.Repository(im.name), tag)
	}
	for _, s := range skipped {
		fmt.Printf("%-20s skipped: cmd/csi-nfs is not in this tree yet (issue 10)\n", s)
	}
	fmt.Printf("mkimages: done in %v\n", time.Since(start).Round(time.Millisecond))
	return nil
}

func mb(n int64) float64 { return float64(n) / 1e6 }

// goBuild builds a static binary: the images carry no C library for Go
// programs to link against (the node image's libc is for Debian's tools).
func goBuild(out, pkg string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}
