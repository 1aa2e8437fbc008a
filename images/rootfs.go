// Package images builds rwxnfs's container images without a container
// engine: a root file system assembled from our static binaries and
// files unpacked from Debian packages, written as one layer of an OCI
// image with go-containerregistry, in an OCI layout tarball that
// `ctr images import` (and other OCI tools) read.
package images

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"sort"
	"strings"
	"time"
)

// entry is one file, directory or symlink of a root file system.
type entry struct {
	mode     fs.FileMode // type bits and permissions
	src      string      // regular file: copy from here...
	data     []byte      // ...or these bytes
	link     string      // symlink target
	uid, gid int
}

// Rootfs is an image's file tree, built up in memory (file contents stay
// on disk until written).
type Rootfs struct {
	entries map[string]entry
}

func NewRootfs() *Rootfs { return &Rootfs{entries: map[string]entry{}} }

func clean(p string) string {
	p = path.Clean("/" + p)
	if p == "/" {
		panic("images: the root itself is not an entry")
	}
	return p
}

// parents adds every missing directory above p (0755, root).
func (r *Rootfs) parents(p string) {
	for d := path.Dir(p); d != "/"; d = path.Dir(d) {
		if _, ok := r.entries[d]; !ok {
			r.entries[d] = entry{mode: fs.ModeDir | 0o755}
		}
	}
}

// File adds a copy of the regular file src at p.
func (r *Rootfs) File(p, src string, perm fs.FileMode) {
	p = clean(p)
	r.parents(p)
	r.entries[p] = entry{mode: perm, src: src}
}

// Data adds a regular file with the given contents.
func (r *Rootfs) Data(p string, data []byte, perm fs.FileMode) {
	p = clean(p)
	r.parents(p)
	r.entries[p] = entry{mode: perm, data: data}
}

// Dir adds a directory owned by uid:gid.
func (r *Rootfs) Dir(p string, perm fs.FileMode, uid, gid int) {
	p = clean(p)
	r.parents(p)
	r.entries[p] = entry{mode: fs.ModeDir | perm, uid: uid, gid: gid}
}

// Symlink adds p -> target.
func (r *Rootfs) Symlink(p, target string) {
	p = clean(p)
	r.parents(p)
	r.entries[p] = entry{mode: fs.ModeSymlink | 0o777, link: target}
}

// Remove drops p (not what is under it) from the tree; variants of an
// image made for tests take a program out this way.
func (r *Rootfs) Remove(p string) { delete(r.entries, clean(p)) }

// Has reports whether p is in the tree.
func (r *Rootfs) Has(p string) bool {
	_, ok := r.entries[clean(p)]
	return ok
}

// Paths lists every entry, sorted.
func (r *Rootfs) Paths() []string {
	out := make([]string, 0, len(r.entries))
	for p := range r.entries {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// WriteTar writes the tree as a tar stream: sorted (so a directory comes
// before what it holds), every time stamp zero, owners numeric, so the
// same inputs give the same layer digest.
func (r *Rootfs) WriteTar(w io.Writer) error {
	tw := tar.NewWriter(w)
	for _, p := range r.Paths() {
		e := r.entries[p]
		hdr := &tar.Header{
			Name:    strings.TrimPrefix(p, "/"),
			Mode:    int64(e.mode.Perm()),
			Uid:     e.uid,
			Gid:     e.gid,
			ModTime: time.Unix(0, 0),
		}
		if e.mode&fs.ModeSticky != 0 {
			hdr.Mode |= 0o1000
		}
		switch {
		case e.mode.IsDir():
			hdr.Typeflag, hdr.Name = tar.TypeDir, hdr.Name+"/"
		case e.mode&fs.ModeSymlink != 0:
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, e.link
		default:
			hdr.Typeflag = tar.TypeReg
		}
		if hdr.Typeflag != tar.TypeReg {
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			continue
		}
		if err := writeFile(tw, hdr, e, p); err != nil {
			return err
		}
	}
	return tw.Close()
}

func writeFile(tw *tar.Writer, hdr *tar.Header, e entry, p string) error {
	var body io.Reader = strings.NewReader(string(e.data))
	hdr.Size = int64(len(e.data))
	if e.src != "" {
		f, err := os.Open(e.src)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("images: %s (for %s) is not a regular file", e.src, p)
		}
		hdr.Size, body = fi.Size(), f
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if _, err := io.Copy(tw, body); err != nil {
		return fmt.Errorf("images: writing %s: %w", p, err)
	}
	return nil
}

// UnpackedSize is the total size of the tree's regular files.
func UnpackedSize(r *Rootfs) (int64, error) {
	var n int64
	for _, e := range r.entries {
		switch {
		case e.src != "":
			fi, err := os.Stat(e.src)
			if err != nil {
				return 0, err
			}
			n += fi.Size()
		default:
			n += int64(len(e.data))
		}
	}
	return n, nil
}

// Extract writes the tree into dir, owners and modes kept (tar -xp; as
// root), for running its programs in a chroot.
func (r *Rootfs) Extract(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	pr, pw := io.Pipe()
	cmd := exec.Command("tar", "-xpf", "-", "-C", dir)
	cmd.Stdin = pr
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return err
	}
	werr := r.WriteTar(pw)
	pw.CloseWithError(werr)
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("tar -x into %s: %v %s", dir, err, out.String())
	}
	return werr
}
