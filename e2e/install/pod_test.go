package install

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// The parts of a workload's pod template this test runs by hand.
type container struct {
	Name         string   `json:"name"`
	Image        string   `json:"image"`
	Command      []string `json:"command"`
	Args         []string `json:"args"`
	VolumeMounts []struct {
		Name      string `json:"name"`
		MountPath string `json:"mountPath"`
	} `json:"volumeMounts"`
	SecurityContext securityContext `json:"securityContext"`
}

type volume struct {
	Name   string `json:"name"`
	Secret *struct {
		SecretName  string `json:"secretName"`
		DefaultMode *int   `json:"defaultMode"`
		Items       []struct {
			Key  string `json:"key"`
			Path string `json:"path"`
		} `json:"items"`
	} `json:"secret"`
	EmptyDir *struct{} `json:"emptyDir"`
	HostPath *struct {
		Path string `json:"path"`
	} `json:"hostPath"`
}

type workload struct {
	Spec struct {
		Template struct {
			Spec struct {
				ServiceAccountName string      `json:"serviceAccountName"`
				Containers         []container `json:"containers"`
				Volumes            []volume    `json:"volumes"`
			} `json:"spec"`
		} `json:"template"`
	} `json:"spec"`
}

// pod is a workload's pod made real on the host, as kubelet would: each
// volume a directory (Secrets written out with their items and mode,
// emptyDirs empty, hostPaths under the pod's directory), so a container's
// command line can be run with its mount paths mapped to those directories.
type pod struct {
	name string
	w    workload
	dir  string
	vols map[string]string // volume name -> host directory
}

func (e *env) materialize(t *testing.T, kind, name string) *pod {
	t.Helper()
	ctx, c := e.ctx, e.c
	p := &pod{name: name, dir: filepath.Join(c.Dir(), "pods", name), vols: map[string]string{}}
	if err := c.Get(ctx, &p.w, kind, name, "-n", ns); err != nil {
		t.Fatalf("reading %s %s: %v", kind, name, err)
	}
	for _, v := range p.w.Spec.Template.Spec.Volumes {
		d := filepath.Join(p.dir, "volumes", v.Name)
		if err := os.MkdirAll(filepath.Dir(d), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, err := os.Readlink(d); err == nil {
			d = target // materialized before: the same emptyDir
		} else if v.EmptyDir != nil {
			// A short path: a unix socket's path (the CSI socket lives in
			// an emptyDir) may not exceed 107 bytes. The pod's directory
			// links to it.
			short, err := os.MkdirTemp("", "rwxnfs-")
			if err != nil {
				t.Fatal(err)
			}
			// Gone with the whole test: later steps materialize the pod again.
			e.top.Cleanup(func() { os.RemoveAll(short) })
			if err := os.Symlink(short, d); err != nil {
				t.Fatal(err)
			}
			d = short
		} else if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		p.vols[v.Name] = d
		if v.Secret == nil {
			continue
		}
		var s struct {
			Data map[string]string `json:"data"`
		}
		if err := c.Get(ctx, &s, "secret", v.Secret.SecretName, "-n", ns); err != nil {
			t.Fatalf("secret %s of %s: %v", v.Secret.SecretName, name, err)
		}
		mode := os.FileMode(0o644)
		if v.Secret.DefaultMode != nil {
			mode = os.FileMode(*v.Secret.DefaultMode)
		}
		items := map[string]string{}
		for _, it := range v.Secret.Items {
			items[it.Key] = it.Path
		}
		if len(items) == 0 {
			for k := range s.Data {
				items[k] = k
			}
		}
		for key, path := range items {
			raw, ok := s.Data[key]
			if !ok {
				t.Fatalf("secret %s has no key %q (volume %s of %s)", v.Secret.SecretName, key, v.Name, name)
			}
			data, err := base64.StdEncoding.DecodeString(raw)
			if err != nil {
				t.Fatal(err)
			}
			f := filepath.Join(d, path)
			if err := os.WriteFile(f, data, mode); err != nil {
				t.Fatal(err)
			}
			os.Chmod(f, mode)
		}
	}
	return p
}

func (p *pod) has(name string) bool {
	for _, c := range p.w.Spec.Template.Spec.Containers {
		if c.Name == name {
			return true
		}
	}
	return false
}

func (p *pod) container(t *testing.T, name string) container {
	t.Helper()
	for _, c := range p.w.Spec.Template.Spec.Containers {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("pod has no container %s", name)
	return container{}
}

// args returns a container's command line (command + args) with every
// mount path replaced by the host directory standing for its volume.
func (p *pod) args(t *testing.T, name string) []string {
	t.Helper()
	c := p.container(t, name)
	type mount struct{ from, to string }
	var mounts []mount
	for _, m := range c.VolumeMounts {
		d, ok := p.vols[m.Name]
		if !ok {
			t.Fatalf("container %s mounts unknown volume %s", name, m.Name)
		}
		mounts = append(mounts, mount{m.MountPath, d})
	}
	// Longest mount path first: /etc/rwxnfs/tls before /etc.
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i].from) > len(mounts[j].from) })
	var out []string
	for _, a := range append(append([]string(nil), c.Command...), c.Args...) {
		for _, m := range mounts {
			if i := strings.Index(a, m.from); i >= 0 && (len(a) == i+len(m.from) || a[i+len(m.from)] == '/') {
				a = a[:i] + m.to + a[i+len(m.from):]
				break
			}
		}
		out = append(out, a)
	}
	return out
}

// volumeDir is the host directory of one of the pod's volumes.
func (p *pod) volumeDir(t *testing.T, name string) string {
	t.Helper()
	d, ok := p.vols[name]
	if !ok {
		t.Fatalf("no volume %s", name)
	}
	return d
}

func flagValue(args []string, flag string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v
		}
	}
	return ""
}

func mustHaveFlag(t *testing.T, args []string, flag string) string {
	t.Helper()
	v := flagValue(args, flag)
	if v == "" {
		t.Fatalf("no %s= in %v", flag, args)
	}
	return v
}
