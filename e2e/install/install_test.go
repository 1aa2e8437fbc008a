package install

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rwxnfs/rwxnfs/e2e/cluster"
	"github.com/rwxnfs/rwxnfs/e2e/toolchain"
	"github.com/rwxnfs/rwxnfs/images"
)

const (
	ns      = "rwxnfs"
	release = "rwxnfs"
	prefix  = release // the chart's fullname for this release
)

func repoRoot(t *testing.T) string {
	d, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// env is one install: the control plane, the release, and the host
// processes standing in for its pods.
type env struct {
	t       *testing.T // the running step
	top     *testing.T // the whole install
	ctx     context.Context
	c       *cluster.Cluster
	root    string // repository
	bin     string // binaries built from this tree
	netns   *cluster.Netns
	nfsd    *cluster.Process
	nfsdFS  string // nfsd's --root on the host
	admin   []string
	procs   map[string]*cluster.Process
	values  string // values file
	addr    string // where nodes and the controller reach nfsd
	hostNet bool
}

// TestInstall installs the chart on a real control plane and drives real
// nfsd and csi-nfs through it. Parts that need cmd/csi-nfs skip, saying
// so, while it is not in the tree.
func TestInstall(t *testing.T) {
	runInstall(t, "values.yaml", "10.96.100.100", false, nil)
}

// TestInstallHostNetwork: the same chart with nfsd in a node's host
// network (no kube-proxy, no cluster DNS): nfsd binds only that address,
// its certificate names it, the controller reaches it there, claims bind.
func TestInstallHostNetwork(t *testing.T) {
	runInstall(t, "values-hostnetwork.yaml", "10.99.0.10", true,
		[]string{"HelmInstall", "NFSDWithChartSecrets", "ControllerStarts", "Provision", "Expand", "NoRBACDenials", "HelmUninstall"})
}

var (
	buildOnce sync.Once
	binDir    string
	haveCSI   bool
)

// binaries builds nfsd and csi-nfs (static, as the images hold them) once
// per run, or takes them from RWXNFS_INSTALL_BINS.
func (e *env) binaries(dir string) {
	buildOnce.Do(func() {
		binDir = filepath.Join(dir, "bin")
		haveCSI = e.exists("cmd/csi-nfs")
		if pre := os.Getenv("RWXNFS_INSTALL_BINS"); pre != "" {
			// nfsd and csi-nfs built elsewhere (another branch, a release).
			binDir = pre
			_, err := os.Stat(filepath.Join(pre, "csi-nfs"))
			haveCSI = err == nil
			return
		}
		e.bin = binDir
		e.build("nfsd", "./cmd/nfsd")
		if haveCSI {
			e.build("csi-nfs", "./cmd/csi-nfs")
		}
	})
	e.bin = binDir
	e.t.Logf("nfsd and csi-nfs from %s", binDir)
}

// runInstall runs the named steps (nil: all) of an install with one
// values file.
func runInstall(t *testing.T, values, addr string, hostNet bool, only []string) {
	if !enabled() {
		t.Skip("set RWXNFS_E2E_INSTALL=1 (make e2e-install)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	e := &env{t: t, top: t, ctx: ctx, root: repoRoot(t), procs: map[string]*cluster.Process{},
		values: filepath.Join(repoRoot(t), "e2e", "install", values), addr: addr, hostNet: hostNet}
	dir := filepath.Join(e.root, "e2e", ".build", "install", time.Now().UTC().Format("20060102-150405"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("logs and state in %s", dir)
	e.binaries(dir)

	// nfsd's address (the Service's ClusterIP, or the node's address) is
	// an address of the namespace's loopback: inside it, the address works
	// as kube-proxy (or the node) would make it.
	netns, err := cluster.NewNetns(netnsName(), addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(netns.Delete)
	e.netns = netns
	start := time.Now()
	e.c, err = cluster.Start(ctx, cluster.Config{Netns: netns, Dir: dir, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.c.Stop)
	t.Logf("control plane up in %v", time.Since(start).Round(time.Millisecond))

	steps := []struct {
		name    string
		needCSI bool
		run     func(t *testing.T)
	}{
		{"HelmInstall", false, e.testHelmInstall},
		{"NFSDWithChartSecrets", false, e.testNFSD},
		{"UpgradeKeepsSecrets", false, e.testUpgradeKeepsSecrets},
		{"NodeRPCServices", false, e.testNodeRPCServices},
		{"ControllerStarts", true, e.testControllerStarts},
		{"Provision", true, e.testProvision},
		{"Expand", true, e.testExpand},
		{"SnapshotRestore", true, e.testSnapshotRestore},
		{"OnDelete", true, e.testOnDelete},
		{"BadParameterEvent", true, e.testBadParameter},
		{"NoRBACDenials", true, e.testNoRBACDenials},
		{"HelmUninstall", false, e.testHelmUninstall},
	}
	// The steps build on each other: after a failure the rest skip.
	failed := ""
	for _, s := range steps {
		if only != nil && !slices.Contains(only, s.name) {
			continue
		}
		t.Run(s.name, func(t *testing.T) {
			switch {
			case failed != "":
				t.Skipf("skipped: %s failed", failed)
			case s.needCSI && !haveCSI:
				t.Skip("cmd/csi-nfs is not in this tree yet (issue 10)")
			}
			e.t = t
			s.run(t)
		})
		if t.Failed() && failed == "" {
			failed = s.name
		}
	}
}

func (e *env) exists(rel string) bool {
	_, err := os.Stat(filepath.Join(e.root, rel))
	return err == nil
}

func (e *env) build(name, pkg string) {
	e.t.Helper()
	// Static, as make images builds them: the images have no C library.
	cmd := exec.Command("go", "build", "-o", filepath.Join(e.bin, name), pkg)
	cmd.Dir = e.root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		e.t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
}

func (e *env) tool(name string) string {
	e.t.Helper()
	p, err := e.c.Tool(e.ctx, name)
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *env) kubectl(args ...string) string {
	e.t.Helper()
	out, err := e.c.Kubectl(e.ctx, args...)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// snapshotAddons installs the snapshot CRDs, which a cluster admin
// installs once before any CSI snapshotter (and the chart checks for);
// snapshot-controller, the other half, starts with the controller.
func (e *env) snapshotAddons() {
	t := e.t
	crds, err := toolchain.SnapshotCRDs(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range crds {
		e.kubectl("apply", "-f", f)
	}
	e.kubectl("wait", "--for=condition=Established", "--timeout=60s",
		"crd/volumesnapshots.snapshot.storage.k8s.io", "crd/volumesnapshotcontents.snapshot.storage.k8s.io",
		"crd/volumesnapshotclasses.snapshot.storage.k8s.io")
}

func (e *env) testHelmInstall(t *testing.T) {
	e.snapshotAddons()
	start := time.Now()
	out, err := e.c.Helm(e.ctx, "install", release, filepath.Join(e.root, "charts", "rwxnfs"),
		"--namespace", ns, "--create-namespace", "-f", e.values)
	if err != nil {
		t.Fatalf("helm install: %v\n%s", err, out)
	}
	t.Logf("helm install: %v\n%s", time.Since(start).Round(time.Millisecond), out)
	if !strings.Contains(out, "STATUS: deployed") || !strings.Contains(out, "storageClassName: rwxnfs") {
		t.Errorf("helm install output lacks the status or the NOTES' example claim:\n%s", out)
	}
	e.checkObjects()
}

// checkObjects: every object the chart rendered was accepted by the
// apiserver (its own validation, admission and the snapshot CRD's schema)
// and says what the values asked for.
func (e *env) checkObjects() {
	t := e.t
	for _, o := range []string{
		"statefulset/" + prefix + "-nfsd", "deployment/" + prefix + "-controller", "daemonset/" + prefix + "-node",
		"secret/" + prefix + "-admin-token", "secret/" + prefix + "-admin-tls", "poddisruptionbudget/" + prefix + "-nfsd",
		"serviceaccount/" + prefix + "-controller", "serviceaccount/" + prefix + "-node", "serviceaccount/" + prefix + "-nfsd",
	} {
		e.kubectl("get", "-n", ns, o)
	}
	for _, o := range []string{"csidriver/nfs.rwxnfs.io", "storageclass/rwxnfs",
		"clusterrole/" + prefix + "-controller", "clusterrolebinding/" + prefix + "-controller"} {
		e.kubectl("get", o)
	}
	if e.hostNet {
		if hn := e.kubectl("get", "-n", ns, "statefulset/"+prefix+"-nfsd", "-o", "jsonpath={.spec.template.spec.hostNetwork}"); hn != "true" {
			t.Errorf("nfsd hostNetwork %q", hn)
		}
	} else {
		for _, o := range []string{"storageclass/rwxnfs-retain", "storageclass/rwxnfs-archive", "storageclass/rwxnfs-bad",
			"volumesnapshotclass/rwxnfs", "-n=" + ns + " networkpolicy/" + prefix + "-nfsd"} {
			e.kubectl(append([]string{"get"}, strings.Fields(o)...)...)
		}
		if ip := e.kubectl("get", "-n", ns, "service/"+prefix+"-nfsd", "-o", "jsonpath={.spec.clusterIP}"); ip != e.addr {
			t.Errorf("Service clusterIP %q, want %s", ip, e.addr)
		}
	}
	// What the controller's account may and may not do, as the apiserver's
	// RBAC decides it.
	sa := "system:serviceaccount:" + ns + ":" + prefix + "-controller"
	type rule struct {
		verb, res string
		allowed   bool
	}
	rules := []rule{
		{"create", "persistentvolumes", true}, {"patch", "persistentvolumeclaims/status", true}, {"create", "events", true},
		{"get", "secrets", false}, {"list", "pods", false}, {"list", "nodes", false}, {"create", "persistentvolumeclaims", false},
	}
	// Snapshot rules exist only where the values turn snapshots on.
	rules = append(rules, rule{"update", "volumesnapshotcontents/status", !e.hostNet})
	for _, c := range rules {
		// kubectl reads "res/x" as a resource named x: a subresource
		// needs its own flag.
		res, sub, _ := strings.Cut(c.res, "/")
		out, _ := e.c.Kubectl(e.ctx, "auth", "can-i", c.verb, res, "--subresource="+sub, "--as="+sa, "-n", "default")
		if got := strings.TrimSpace(out) == "yes"; got != c.allowed {
			t.Errorf("controller may %s %s: %v, want %v", c.verb, c.res, got, c.allowed)
		}
	}
	for _, acct := range []string{prefix + "-node", prefix + "-nfsd"} {
		out, _ := e.c.Kubectl(e.ctx, "auth", "can-i", "--list", "--as=system:serviceaccount:"+ns+":"+acct, "-n", ns)
		if strings.Contains(out, "persistentvolumes") || strings.Contains(out, "secrets") {
			t.Errorf("%s has rights it does not need:\n%s", acct, out)
		}
	}
}

// testNFSD runs nfsd with the StatefulSet's own arguments, token and
// certificate (written as kubelet would write the Secret volumes, mode
// 0400), then reaches its admin API at the Service address over TLS with
// the chart's CA, as the controller will.
func (e *env) testNFSD(t *testing.T) {
	p := e.materialize(t, "statefulset", prefix+"-nfsd")
	args := p.args(t, "nfsd")
	tokenFile := mustHaveFlag(t, args, "--admin-token-file")
	fi, err := os.Stat(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o400 {
		t.Fatalf("token file mode %v, want 0400 (nfsd refuses a token others can read)", fi.Mode().Perm())
	}
	// nfsd from its image's tree, with the StatefulSet's capabilities,
	// read-only root and volumes: it must start and serve with no more.
	e.nfsdFS = p.volumeDir(t, "data")
	root := e.imageRoot(t, "nfsd", images.NFSDRootfs(filepath.Join(e.bin, "nfsd")))
	proc := e.runContainer(t, e.netns, root, p, "nfsd", []string{"/usr/bin/nfsd"})
	e.nfsd = proc
	ctrl := e.materialize(t, "deployment", prefix+"-controller")
	cargs := ctrl.args(t, "csi-nfs")
	e.admin = []string{"admin", "--addr=" + e.addr + ":9103", "--token-file=" + mustHaveFlag(t, cargs, "--admin-token-file"),
		"--tls-ca=" + mustHaveFlag(t, cargs, "--admin-tls-ca"), "-o", "json"}
	err = cluster.Eventually(e.ctx, "nfsd's admin API at the Service address", 30*time.Second, func() (bool, string, error) {
		if exited, err := proc.Exited(); exited {
			return false, "", fmt.Errorf("nfsd exited: %v\n%s", err, proc.Output())
		}
		out, err := e.c.Run(e.ctx, filepath.Join(e.bin, "nfsd"), append(e.admin, "list")...)
		return err == nil, fmt.Sprint(out, err), nil
	})
	if err != nil {
		t.Fatalf("%v\nnfsd log:\n%s", err, proc.Output())
	}
	// A wrong token is refused: the admin API really checks the one the
	// chart generated.
	bad := filepath.Join(e.c.Dir(), "wrong-token")
	os.WriteFile(bad, []byte("not-the-token"), 0o400)
	wrong := append([]string{"admin", "--addr=" + e.addr + ":9103", "--token-file=" + bad,
		"--tls-ca=" + mustHaveFlag(t, cargs, "--admin-tls-ca")}, "list")
	if _, err := e.c.Run(e.ctx, filepath.Join(e.bin, "nfsd"), wrong...); err == nil {
		t.Error("admin API accepted a wrong token")
	}
}

// testUpgradeKeepsSecrets: helm upgrade reads the token and certificate
// back with lookup and keeps them, so running pods keep working and are
// not restarted by a checksum change.
func (e *env) testUpgradeKeepsSecrets(t *testing.T) {
	get := func() (string, string, string) {
		tok := e.kubectl("get", "-n", ns, "secret/"+prefix+"-admin-token", "-o", "jsonpath={.data.token}")
		crt := e.kubectl("get", "-n", ns, "secret/"+prefix+"-admin-tls", "-o", "jsonpath={.data.tls\\.crt}")
		sum := e.kubectl("get", "-n", ns, "deployment/"+prefix+"-controller", "-o", "jsonpath={.spec.template.metadata.annotations.checksum/admin}")
		return tok, crt, sum
	}
	tok1, crt1, sum1 := get()
	out, err := e.c.Helm(e.ctx, "upgrade", release, filepath.Join(e.root, "charts", "rwxnfs"),
		"--namespace", ns, "-f", e.values)
	if err != nil {
		t.Fatalf("helm upgrade: %v\n%s", err, out)
	}
	tok2, crt2, sum2 := get()
	if tok1 == "" || tok1 != tok2 || crt1 == "" || crt1 != crt2 || sum1 != sum2 {
		t.Errorf("helm upgrade changed the admin secrets (token same %v, cert same %v, checksum same %v)", tok1 == tok2, crt1 == crt2, sum1 == sum2)
	}
	if !strings.Contains(out, "REVISION: 2") {
		t.Errorf("upgrade output:\n%s", out)
	}
}

// testControllerStarts runs csi-nfs and the sidecars with the Deployment's own
// arguments; the sidecars (upstream images, here host processes)
// authenticate as the chart's ServiceAccount.
func (e *env) testControllerStarts(t *testing.T) {
	p := e.materialize(t, "deployment", prefix+"-controller")
	// csi-nfs from the controller image's tree, under the container's
	// securityContext (no capabilities, read-only root).
	root := e.imageRoot(t, "controller", images.ControllerRootfs(filepath.Join(e.bin, "csi-nfs")))
	csi := e.runContainer(t, e.netns, root, p, "csi-nfs", []string{"/usr/bin/csi-nfs"})
	sock := filepath.Join(p.volumeDir(t, "socket-dir"), "csi.sock")
	if err := cluster.Eventually(e.ctx, "csi-nfs's socket", 30*time.Second, func() (bool, string, error) {
		if exited, err := csi.Exited(); exited {
			return false, "", fmt.Errorf("csi-nfs exited: %v\n%s", err, csi.Output())
		}
		_, err := os.Stat(sock)
		return err == nil, fmt.Sprint(err), nil
	}); err != nil {
		t.Fatal(err)
	}
	snapshots := p.has("csi-snapshotter")
	if snapshots {
		// The cluster's own snapshot controller runs as the admin, as a
		// cluster add-on would; only our sidecars are held to the chart's
		// RBAC.
		sc, err := e.c.StartProcess("snapshot-controller", e.tool("snapshot-controller"),
			[]string{"--kubeconfig=" + e.c.Kubeconfig, "--leader-election=false", "--v=3"})
		if err != nil {
			t.Fatal(err)
		}
		e.procs["snapshot-controller"] = sc
	}
	kc, err := e.c.ServiceAccountKubeconfig(e.ctx, ns, p.w.Spec.Template.Spec.ServiceAccountName)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"csi-provisioner", "csi-resizer", "csi-snapshotter"} {
		if !p.has(name) {
			continue
		}
		args := append(p.args(t, name), "--kubeconfig="+kc)
		proc, err := e.c.StartProcess(name, e.tool(name), args)
		if err != nil {
			t.Fatal(err)
		}
		e.procs[name] = proc
	}
}

// --- cases ---

type pvc struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		VolumeName string `json:"volumeName"`
	} `json:"spec"`
	Status struct {
		Phase    string            `json:"phase"`
		Capacity map[string]string `json:"capacity"`
	} `json:"status"`
}

type pv struct {
	Spec struct {
		Capacity map[string]string `json:"capacity"`
		CSI      struct {
			Driver           string            `json:"driver"`
			VolumeHandle     string            `json:"volumeHandle"`
			VolumeAttributes map[string]string `json:"volumeAttributes"`
		} `json:"csi"`
		PersistentVolumeReclaimPolicy string `json:"persistentVolumeReclaimPolicy"`
	} `json:"spec"`
}

func (e *env) makeClaim(name, class, size, dataSource string) {
	src := ""
	if dataSource != "" {
		src = fmt.Sprintf("  dataSource:\n    apiGroup: snapshot.storage.k8s.io\n    kind: VolumeSnapshot\n    name: %s\n", dataSource)
	}
	manifest := fmt.Sprintf(`apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: %s
  namespace: default
spec:
  accessModes: [ReadWriteMany]
  storageClassName: %s
  resources:
    requests:
      storage: %s
%s`, name, class, size, src)
	if err := e.c.Apply(e.ctx, manifest); err != nil {
		e.t.Fatal(err)
	}
}

// bound waits for a claim to bind and returns it and its volume.
func (e *env) bound(t *testing.T, name string) (pvc, pv) {
	t.Helper()
	var c pvc
	start := time.Now()
	err := cluster.Eventually(e.ctx, "claim "+name+" Bound", 90*time.Second, func() (bool, string, error) {
		if err := e.c.Get(e.ctx, &c, "pvc", name, "-n", "default"); err != nil {
			return false, "", err
		}
		return c.Status.Phase == "Bound", c.Status.Phase, nil
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, e.events(name))
	}
	t.Logf("claim %s Bound in %v", name, time.Since(start).Round(time.Millisecond))
	var v pv
	if err := e.c.Get(e.ctx, &v, "pv", c.Spec.VolumeName); err != nil {
		t.Fatal(err)
	}
	if v.Spec.CSI.Driver != "nfs.rwxnfs.io" {
		t.Errorf("PV driver %q", v.Spec.CSI.Driver)
	}
	return c, v
}

func (e *env) events(name string) string {
	out, _ := e.c.Kubectl(e.ctx, "get", "events", "-n", "default", "--field-selector", "involvedObject.name="+name,
		"-o", "custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message")
	return out
}

var exportPath = regexp.MustCompile(`/volumes/([A-Za-z0-9._-]+)`)

// volumeID finds the nfsd volume behind a PV from its volume context
// (which carries the export path /volumes/<id>).
func volumeID(t *testing.T, v pv) string {
	t.Helper()
	for _, val := range v.Spec.CSI.VolumeAttributes {
		if m := exportPath.FindStringSubmatch(val); m != nil {
			return m[1]
		}
	}
	t.Fatalf("no /volumes/<id> in the PV's volume context %v (handle %s)", v.Spec.CSI.VolumeAttributes, v.Spec.CSI.VolumeHandle)
	return ""
}

type adminVolume struct {
	VolumeID      string          `json:"volumeId"`
	ExportPath    string          `json:"exportPath"`
	CapacityBytes json.RawMessage `json:"capacityBytes"`
}

func (a adminVolume) capacity() string { return strings.Trim(string(a.CapacityBytes), `"`) }

// adminVolume reads a volume through nfsd's admin CLI; nil if nfsd has
// no such volume.
func (e *env) adminVolume(t *testing.T, id string) *adminVolume {
	t.Helper()
	out, err := e.c.Run(e.ctx, filepath.Join(e.bin, "nfsd"), append(e.admin, "list")...)
	if err != nil {
		t.Fatal(err)
	}
	var vols []adminVolume
	if err := json.Unmarshal([]byte(out), &vols); err != nil {
		t.Fatalf("admin list: %v\n%s", err, out)
	}
	for _, v := range vols {
		if v.VolumeID == id {
			return &v
		}
	}
	return nil
}

func (e *env) testProvision(t *testing.T) {
	e.makeClaim("data", "rwxnfs", "1Gi", "")
	c, v := e.bound(t, "data")
	if c.Status.Capacity["storage"] != "1Gi" || v.Spec.Capacity["storage"] != "1Gi" {
		t.Errorf("claim capacity %v, PV capacity %v, want 1Gi", c.Status.Capacity, v.Spec.Capacity)
	}
	id := volumeID(t, v)
	a := e.adminVolume(t, id)
	if a == nil {
		t.Fatalf("nfsd has no volume %s", id)
	}
	if a.capacity() != "1073741824" {
		t.Errorf("quota %s, want 1073741824 (1Gi)", a.capacity())
	}
	if !strings.Contains(strings.Join(mapValues(v.Spec.CSI.VolumeAttributes), " "), e.addr) {
		t.Errorf("volume context %v does not name the server %s", v.Spec.CSI.VolumeAttributes, e.addr)
	}
	// Put data in the volume on the server side (this host has no NFS
	// client); the snapshot case reads it back from the restored volume.
	if err := os.WriteFile(filepath.Join(e.nfsdFS, "volumes", id, "hello.txt"), []byte("hello from the install test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func (e *env) testExpand(t *testing.T) {
	e.kubectl("patch", "pvc", "data", "-n", "default", "--type=merge", "-p", `{"spec":{"resources":{"requests":{"storage":"2Gi"}}}}`)
	var c pvc
	err := cluster.Eventually(e.ctx, "claim data grown to 2Gi", 90*time.Second, func() (bool, string, error) {
		if err := e.c.Get(e.ctx, &c, "pvc", "data", "-n", "default"); err != nil {
			return false, "", err
		}
		return c.Status.Capacity["storage"] == "2Gi", fmt.Sprint(c.Status.Capacity), nil
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, e.events("data"))
	}
	var v pv
	e.c.Get(e.ctx, &v, "pv", c.Spec.VolumeName)
	if a := e.adminVolume(t, volumeID(t, v)); a == nil || a.capacity() != "2147483648" {
		t.Errorf("quota after expansion %+v, want 2147483648 (2Gi)", a)
	}
}

func (e *env) testSnapshotRestore(t *testing.T) {
	if err := e.c.Apply(e.ctx, `apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshot
metadata:
  name: snap
  namespace: default
spec:
  volumeSnapshotClassName: rwxnfs
  source:
    persistentVolumeClaimName: data
`); err != nil {
		t.Fatal(err)
	}
	err := cluster.Eventually(e.ctx, "snapshot ready", 90*time.Second, func() (bool, string, error) {
		out, err := e.c.Kubectl(e.ctx, "get", "volumesnapshot", "snap", "-n", "default", "-o", "jsonpath={.status.readyToUse} {.status.error.message}")
		return strings.HasPrefix(out, "true"), out, err
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, e.events("snap"))
	}
	e.makeClaim("restored", "rwxnfs", "2Gi", "snap")
	_, v := e.bound(t, "restored")
	data, err := os.ReadFile(filepath.Join(e.nfsdFS, "volumes", volumeID(t, v), "hello.txt"))
	if err != nil || string(data) != "hello from the install test\n" {
		t.Errorf("restored volume's hello.txt: %q %v", data, err)
	}
}

// testOnDelete deletes one claim of each class and looks at what nfsd
// did with the data: gone, kept under retained/, moved under archive/.
func (e *env) testOnDelete(t *testing.T) {
	for _, c := range []struct{ claim, class string }{{"keep", "rwxnfs-retain"}, {"arch", "rwxnfs-archive"}} {
		e.makeClaim(c.claim, c.class, "100Mi", "")
	}
	ids := map[string]string{}
	for _, name := range []string{"restored", "keep", "arch"} {
		_, v := e.bound(t, name)
		ids[name] = volumeID(t, v)
		os.WriteFile(filepath.Join(e.nfsdFS, "volumes", ids[name], "mark"), []byte(name), 0o644)
	}
	for _, name := range []string{"restored", "keep", "arch"} {
		e.kubectl("delete", "pvc", name, "-n", "default", "--wait=true", "--timeout=60s")
	}
	for name, id := range ids {
		err := cluster.Eventually(e.ctx, "volume "+id+" of "+name+" unexported", 60*time.Second, func() (bool, string, error) {
			_, err := os.Stat(filepath.Join(e.nfsdFS, "volumes", id))
			return os.IsNotExist(err) && e.adminVolume(t, id) == nil, fmt.Sprint(err), nil
		})
		if err != nil {
			t.Error(err)
		}
	}
	if _, err := os.Stat(filepath.Join(e.nfsdFS, "retained", ids["restored"])); err == nil {
		t.Error("onDelete=delete kept the data")
	}
	if data, err := os.ReadFile(filepath.Join(e.nfsdFS, "retained", ids["keep"], "mark")); err != nil || string(data) != "keep" {
		t.Errorf("onDelete=retain: retained/%s/mark: %q %v", ids["keep"], data, err)
	}
	archived, _ := filepath.Glob(filepath.Join(e.nfsdFS, "archive", ids["arch"]+"-*", "mark"))
	if len(archived) != 1 {
		t.Errorf("onDelete=archive: archive/%s-*/mark: %v", ids["arch"], archived)
	}
	// The PVs went with their claims (reclaimPolicy Delete).
	out := e.kubectl("get", "pv", "-o", "name")
	if n := strings.Count(out, "persistentvolume/"); n != 1 {
		t.Errorf("%d PVs left, want 1 (data):\n%s", n, out)
	}
}

// testBadParameter: a class with a parameter the driver refuses leaves the
// claim Pending with the driver's own message in an event.
func (e *env) testBadParameter(t *testing.T) {
	e.makeClaim("bad", "rwxnfs-bad", "1Gi", "")
	var ev string
	err := cluster.Eventually(e.ctx, "a ProvisioningFailed event naming the parameter", 90*time.Second, func() (bool, string, error) {
		ev = e.events("bad")
		return strings.Contains(ev, "ProvisioningFailed") && strings.Contains(ev, "squash"), ev, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("event:\n%s", ev)
	var c pvc
	e.c.Get(e.ctx, &c, "pvc", "bad", "-n", "default")
	if c.Status.Phase != "Pending" {
		t.Errorf("claim with a bad parameter is %s", c.Status.Phase)
	}
	e.kubectl("delete", "pvc", "bad", "-n", "default", "--wait=false")
}

// testNoRBACDenials: the sidecars ran on the chart's RBAC alone; any
// "forbidden" in their logs is a rule the chart lacks.
func (e *env) testNoRBACDenials(t *testing.T) {
	for name, p := range e.procs {
		if exited, err := p.Exited(); exited {
			t.Errorf("%s exited: %v", name, err)
		}
		for _, line := range strings.Split(p.Output(), "\n") {
			if strings.Contains(line, "forbidden") || strings.Contains(line, "cannot list resource") || strings.Contains(line, "cannot watch resource") {
				t.Errorf("%s: RBAC denial: %s", name, line)
			}
		}
	}
}

// testHelmUninstall removes the release; nfsd's data stays where it was.
func (e *env) testHelmUninstall(t *testing.T) {
	if out, err := e.c.Helm(e.ctx, "uninstall", release, "--namespace", ns); err != nil {
		t.Fatalf("helm uninstall: %v\n%s", err, out)
	}
	if out, _ := e.c.Kubectl(e.ctx, "get", "csidriver", "-o", "name"); strings.Contains(out, "nfs.rwxnfs.io") {
		t.Error("CSIDriver left after uninstall")
	}
	if _, err := os.Stat(filepath.Join(e.nfsdFS, "state")); err != nil {
		t.Errorf("nfsd's state gone after uninstall: %v", err)
	}
}
