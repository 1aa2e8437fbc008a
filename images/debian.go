package images

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Debian downloads Debian packages with apt-get (no service is installed
// or started: the .debs are only unpacked) and unpacks them into one tree.
type Debian struct {
	Dir string    // cache: <Dir>/debs/*.deb, <Dir>/root-<hash>/
	Log io.Writer // nil for quiet
}

// Unpack downloads pkgs and the libraries they depend on (Depends and
// Pre-Depends, followed through packages named lib*), unpacks them all
// into one directory and returns it. The result is cached by the exact
// package versions.
func (d *Debian) Unpack(pkgs ...string) (string, error) {
	// A fresh machine may have no package lists: fetch them once.
	if _, err := candidates(pkgs); err != nil {
		d.logf("no package lists (%v): apt-get update", err)
		if out, err := exec.Command("apt-get", "-o", "DPkg::Lock::Timeout=600", "update", "-qq").CombinedOutput(); err != nil {
			return "", fmt.Errorf("apt-get update: %v\n%s", err, out)
		}
	}
	all, err := libraryClosure(pkgs)
	if err != nil {
		return "", err
	}
	vers, err := candidates(all)
	if err != nil {
		return "", err
	}
	var versions []string
	for _, p := range all {
		versions = append(versions, p+"="+vers[p])
	}
	sort.Strings(versions)
	root := filepath.Join(d.Dir, "root-"+shortHash(strings.Join(versions, "\n")))
	if _, err := os.Stat(filepath.Join(root, ".done")); err == nil {
		return root, nil
	}
	debs := filepath.Join(d.Dir, "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return "", err
	}
	d.logf("apt-get download %s", strings.Join(versions, " "))
	cmd := exec.Command("apt-get", append([]string{"-o", "DPkg::Lock::Timeout=600", "download"}, versions...)...)
	cmd.Dir = debs
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("apt-get download: %v\n%s", err, out)
	}
	os.RemoveAll(root)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	for _, pv := range versions {
		p, v, _ := strings.Cut(pv, "=")
		// apt-get names the file <pkg>_<version without epoch>_<arch>.deb,
		// with ':' of an epoch escaped as %3a.
		files, _ := filepath.Glob(filepath.Join(debs, p+"_"+strings.ReplaceAll(v, ":", "%3a")+"_*.deb"))
		if len(files) != 1 {
			return "", fmt.Errorf("apt-get download %s=%s left %d files in %s", p, v, len(files), debs)
		}
		if out, err := exec.Command("dpkg-deb", "-x", files[0], root).CombinedOutput(); err != nil {
			return "", fmt.Errorf("dpkg-deb -x %s: %v\n%s", files[0], err, out)
		}
	}
	return root, os.WriteFile(filepath.Join(root, ".done"), []byte(strings.Join(versions, "\n")+"\n"), 0o644)
}

func (d *Debian) logf(format string, args ...any) {
	if d.Log != nil {
		fmt.Fprintf(d.Log, "images: "+format+"\n", args...)
	}
}

var depLine = regexp.MustCompile(`^\s*\|?(?:Pre)?Depends: ([a-z0-9][a-z0-9.+-]*)`)

// libraryClosure returns pkgs plus every lib* package they need,
// transitively. Non-library dependencies (adduser, debconf, ...) are
// maintainer-script helpers a container does not run. One apt-cache call
// per level of the dependency tree.
func libraryClosure(pkgs []string) ([]string, error) {
	seen := map[string]bool{}
	for _, p := range pkgs {
		seen[p] = true
	}
	for level := pkgs; len(level) > 0; {
		args := append([]string{"depends", "--no-recommends", "--no-suggests", "--no-conflicts",
			"--no-breaks", "--no-replaces", "--no-enhances"}, level...)
		out, err := exec.Command("apt-cache", args...).Output()
		if err != nil {
			return nil, fmt.Errorf("apt-cache depends %v: %v (run apt-get update?)", level, err)
		}
		level = nil
		for _, line := range strings.Split(string(out), "\n") {
			m := depLine.FindStringSubmatch(line)
			if m == nil || seen[m[1]] || !strings.HasPrefix(m[1], "lib") {
				continue
			}
			seen[m[1]] = true
			level = append(level, m[1])
		}
	}
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}

// candidates returns the version apt would install of each package.
func candidates(pkgs []string) (map[string]string, error) {
	out, err := exec.Command("apt-cache", append([]string{"policy"}, pkgs...)...).Output()
	if err != nil {
		return nil, fmt.Errorf("apt-cache policy: %v", err)
	}
	vers := map[string]string{}
	cur := ""
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(line, " ") && strings.HasSuffix(line, ":") {
			cur = strings.TrimSuffix(line, ":")
			continue
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Candidate: "); ok && cur != "" && v != "(none)" {
			vers[cur] = v
		}
	}
	for _, p := range pkgs {
		if vers[p] == "" {
			return nil, fmt.Errorf("no candidate version of Debian package %s (run apt-get update?)", p)
		}
	}
	return vers, nil
}

// libDirs are where the dynamic loader looks, in order (Debian amd64).
var libDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib", "/usr/lib", "/lib64", "/usr/lib64"}

// usrMerged maps a path of an unpacked (pre-merge) .deb to its place in a
// merged-/usr image: /sbin/x -> /usr/sbin/x, /lib/x -> /usr/lib/x.
func usrMerged(p string) string {
	for _, top := range []string{"/bin/", "/sbin/", "/lib/", "/lib64/"} {
		if strings.HasPrefix(p, top) {
			return "/usr" + p
		}
	}
	return p
}

// MergedUsr adds the top-level symlinks of a merged-/usr system, so
// programs find /sbin/rpcbind and /lib64/ld-linux-x86-64.so.2 at either
// name.
func MergedUsr(r *Rootfs) {
	for _, d := range []string{"bin", "sbin", "lib", "lib64"} {
		r.Dir("/usr/"+d, 0o755, 0, 0)
		r.Symlink("/"+d, "usr/"+d)
	}
}

// ELF adds the programs at bins (paths inside root) to r, under
// merged-/usr paths, with every shared library they need, transitively,
// and the dynamic loader. A missing library is an error naming it.
func ELF(r *Rootfs, root string, bins ...string) error {
	queue := append([]string(nil), bins...)
	done := map[string]bool{}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if done[p] {
			continue
		}
		done[p] = true
		real, err := addResolved(r, root, p)
		if err != nil {
			return err
		}
		deps, err := elfDeps(real, root, p)
		if err != nil {
			return err
		}
		queue = append(queue, deps...)
	}
	return nil
}

// elfDeps returns the loader and the shared libraries the ELF file at
// host path real needs, as paths inside root; name is how errors call it.
func elfDeps(real, root, name string) ([]string, error) {
	f, err := elf.Open(real)
	if err != nil {
		return nil, fmt.Errorf("images: %s: %w", name, err)
	}
	defer f.Close()
	needed, err := f.ImportedLibraries()
	if err != nil {
		return nil, fmt.Errorf("images: %s: %w", name, err)
	}
	var deps []string
	if interp := interpreter(f); interp != "" {
		deps = append(deps, interp)
	}
	for _, lib := range needed {
		found := ""
		for _, dir := range libDirs {
			if _, err := os.Lstat(filepath.Join(root, dir, lib)); err == nil {
				found = path.Join(dir, lib)
				break
			}
		}
		if found == "" {
			return nil, fmt.Errorf("images: %s needs %s, found in none of %v under %s: add the Debian package that ships it", name, lib, libDirs, root)
		}
		deps = append(deps, found)
	}
	return deps, nil
}

// ELFAt adds the program at host path src to r as dst, with the shared
// libraries and loader it needs taken from root (as ELF does): for
// binaries built outside any package tree, such as the CSI sidecars the
// test images carry.
func ELFAt(r *Rootfs, root, dst, src string) error {
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	r.File(dst, src, fi.Mode().Perm())
	deps, err := elfDeps(src, root, src)
	if err != nil {
		return err
	}
	return ELF(r, root, deps...)
}

// addResolved adds p (a path inside root) to r, following symlinks (each
// link is kept as a link), and returns the final file's host path.
func addResolved(r *Rootfs, root, p string) (string, error) {
	for hops := 0; hops < 16; hops++ {
		host := filepath.Join(root, p)
		fi, err := os.Lstat(host)
		if err != nil {
			return "", fmt.Errorf("images: %s not in %s: %w", p, root, err)
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			r.File(usrMerged(p), host, fi.Mode().Perm())
			return host, nil
		}
		target, err := os.Readlink(host)
		if err != nil {
			return "", err
		}
		r.Symlink(usrMerged(p), target)
		if !path.IsAbs(target) {
			target = path.Join(path.Dir(p), target)
		}
		p = target
	}
	return "", fmt.Errorf("images: too many symlinks at %s", p)
}

func interpreter(f *elf.File) string {
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			data, err := io.ReadAll(prog.Open())
			if err == nil {
				return string(bytes.TrimRight(data, "\x00"))
			}
		}
	}
	return ""
}

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:6])
}
