package install

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rwxnfs/rwxnfs/e2e/cluster"
	"github.com/rwxnfs/rwxnfs/images"
)

// securityContext of a container, as much as this test applies.
type securityContext struct {
	AllowPrivilegeEscalation *bool `json:"allowPrivilegeEscalation"`
	ReadOnlyRootFilesystem   bool  `json:"readOnlyRootFilesystem"`
	Capabilities             struct {
		Add  []string `json:"add"`
		Drop []string `json:"drop"`
	} `json:"capabilities"`
}

// testNodeRPCServices runs the node DaemonSet's rpcbind and rpc-statd
// containers from the node image's own tree the way a runtime would: the
// chart's command, only the chart's capabilities (the bounding set; root
// gets nothing else), no new privileges, a read-only root, the chart's
// volumes on /run and /var/lib/nfs, in a network namespace of their own
// (a node's). Both must come up and register with the portmapper: that is
// what mount.nfs and the kernel's lockd need of them.
func (e *env) testNodeRPCServices(t *testing.T) {
	deb := &images.Debian{Dir: filepath.Join(e.root, "build", "images", "debian"), Log: os.Stderr}
	debRoot, err := deb.Unpack(images.NodePackages...)
	if err != nil {
		t.Fatal(err)
	}
	// csi-nfs is not run here: any file stands in for it until it exists.
	csi := filepath.Join(e.bin, "csi-nfs")
	if _, err := os.Stat(csi); err != nil {
		csi = filepath.Join(e.bin, "nfsd")
	}
	r, err := images.NodeRootfs(csi, debRoot)
	if err != nil {
		t.Fatal(err)
	}
	root := e.imageRoot(t, "node", r)
	node, err := cluster.NewNetns(netnsName() + "-node")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(node.Delete)
	p := e.materialize(t, "daemonset", prefix+"-node")
	for _, name := range []string{"rpcbind", "rpc-statd"} {
		proc := e.runContainer(t, node, root, p, name, nil)
		want := map[string]string{"rpcbind": "portmapper", "rpc-statd": "status"}[name]
		err = cluster.Eventually(e.ctx, name+" registered with the portmapper", 30*time.Second, func() (bool, string, error) {
			if exited, err := proc.Exited(); exited {
				return false, "", fmt.Errorf("%s exited: %v\n%s", name, err, proc.Output())
			}
			out, err := exec.Command("ip", "netns", "exec", node.Name, "chroot", root, "/usr/sbin/rpcinfo", "-p", "127.0.0.1").CombinedOutput()
			return err == nil && strings.Contains(string(out), want), string(out), nil
		})
		if err != nil {
			t.Fatalf("%v\n%s log:\n%s", err, name, proc.Output())
		}
	}
	// statd keeps its state on the chart's volume.
	if _, err := os.Stat(filepath.Join(p.volumeDir(t, "statd-state"), "state")); err != nil {
		t.Errorf("statd wrote no state file to its volume: %v", err)
	}
	// Only this step needs them (the node's namespace goes with it).
	for _, name := range []string{"rpcbind", "rpc-statd"} {
		e.procs[p.name+"-"+name].Stop(5 * time.Second)
		delete(e.procs, p.name+"-"+name)
	}
}

// imageRoot unpacks an image's tree under the cluster's directory, with
// the host's setpriv (util-linux) added to apply a container's
// capabilities inside it, and the mount points a runtime provides.
func (e *env) imageRoot(t *testing.T, name string, r *images.Rootfs) string {
	t.Helper()
	if err := images.ELF(r, "/", "/usr/bin/setpriv"); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(e.c.Dir(), "images", name)
	if err := r.Extract(root); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"proc", "dev"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	return root
}

// runContainer runs one container of a materialized pod from an image
// tree in netns: entrypoint (the image's, when the container has no
// command) plus the container's arguments, with its securityContext and
// volumes, as a runtime would.
func (e *env) runContainer(t *testing.T, netns *cluster.Netns, root string, p *pod, name string, entrypoint []string) *cluster.Process {
	t.Helper()
	proc, err := e.c.StartProcessIn(netns, p.name+"-"+name, "sh", []string{"-c", runtimeScript(t, root, p, name, entrypoint)})
	if err != nil {
		t.Fatal(err)
	}
	e.procs[p.name+"-"+name] = proc
	return proc
}

// runtimeScript is the shell a container runtime's work comes down to for
// one container: a private mount namespace (ip netns exec gives one) with
// the root read-only if asked, the volumes bound in, /proc and /dev, then
// the command under the container's capabilities.
func runtimeScript(t *testing.T, root string, p *pod, name string, entrypoint []string) string {
	t.Helper()
	c := p.container(t, name)
	sc := c.SecurityContext
	cmdline := append(append([]string(nil), c.Command...), c.Args...)
	if len(c.Command) == 0 {
		cmdline = append(append([]string(nil), entrypoint...), c.Args...)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "set -e\nmount --bind %q %q\n", root, root)
	mounts := append(c.VolumeMounts[:0:0], c.VolumeMounts...)
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i].MountPath) < len(mounts[j].MountPath) })
	for _, m := range mounts {
		// The runtime makes a missing mount point, as runc does.
		target := filepath.Join(root, m.MountPath)
		fmt.Fprintf(&b, "mkdir -p %q\nmount --bind %q %q\n", target, p.volumeDir(t, m.Name), target)
	}
	fmt.Fprintf(&b, "mount -t proc proc %q\nmount --rbind /dev %q\n", filepath.Join(root, "proc"), filepath.Join(root, "dev"))
	if sc.ReadOnlyRootFilesystem {
		fmt.Fprintf(&b, "mount -o remount,bind,ro %q\n", root)
	}
	caps := "-all"
	for _, c := range sc.Capabilities.Add {
		caps += ",+" + strings.ToLower(c)
	}
	if len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
		t.Errorf("%s does not drop ALL capabilities: %v", name, sc.Capabilities.Drop)
	}
	nnp := ""
	if sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
		nnp = "--no-new-privs "
	}
	fmt.Fprintf(&b, "exec chroot %q /usr/bin/setpriv %s--bounding-set %s --inh-caps -all --", root, nnp, caps)
	for _, a := range cmdline {
		fmt.Fprintf(&b, " %q", a)
	}
	b.WriteString("\n")
	return b.String()
}
