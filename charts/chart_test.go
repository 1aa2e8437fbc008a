// Package charts tests the Helm chart charts/rwxnfs with the real helm
// (lint, template, values.schema.json) and validates every object it
// renders against strict JSON schemas made from Kubernetes' own OpenAPI
// document (kubeconform). The tools come from make chart-tools (part of
// make test); a plain `go test` without them skips, naming the target.
package charts

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/rwxnfs/rwxnfs/e2e/toolchain"
)

const (
	chartDir    = "rwxnfs"
	kubeVersion = "1.33.13"
	namespace   = "storage"
)

type tools struct{ helm, kubeconform, schemas string }

func needTools(t *testing.T) tools {
	t.Helper()
	c := toolchain.Default()
	helm, ok1 := c.Built("helm")
	kc, ok2 := c.Built("kubeconform")
	schemas, err := c.Schemas(context.Background())
	if !ok1 || !ok2 || err != nil {
		msg := fmt.Sprintf("helm/kubeconform/schemas not in %s (make chart-tools builds them; err=%v)", c.Dir, err)
		if os.Getenv("RWXNFS_STRICT") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return tools{helm, kc, schemas}
}

func run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	// helm keeps no state between runs here: no repositories, no cache.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
	err := cmd.Run()
	if err != nil {
		return out.String() + errb.String(), fmt.Errorf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

// valueSets are the files in charts/rwxnfs/ci/.
func valueSets(t *testing.T) []string {
	files, err := filepath.Glob(filepath.Join(chartDir, "ci", "*-values.yaml"))
	if err != nil || len(files) < 4 {
		t.Fatalf("value sets in %s/ci: %v %v", chartDir, files, err)
	}
	return files
}

// template renders the chart as `helm install` would against a 1.33
// cluster that serves the snapshot API.
func (tl tools) template(t *testing.T, args ...string) (string, error) {
	t.Helper()
	base := []string{"template", "r1", chartDir, "--namespace", namespace, "--kube-version", kubeVersion,
		"--api-versions", "snapshot.storage.k8s.io/v1/VolumeSnapshotClass"}
	return run(t, tl.helm, append(base, args...)...)
}

func TestLint(t *testing.T) {
	tl := needTools(t)
	for _, f := range valueSets(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if out, err := run(t, tl.helm, "lint", "--strict", chartDir, "-f", f, "--kube-version", kubeVersion); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
}

// TestRenderedObjectsValidate renders every value set and validates each
// object against the strict schemas: an unknown or misplaced field, a
// wrong type, a kind without a schema all fail.
func TestRenderedObjectsValidate(t *testing.T) {
	tl := needTools(t)
	for _, f := range valueSets(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			out, err := tl.template(t, "-f", f)
			if err != nil {
				t.Fatal(err)
			}
			manifest := filepath.Join(t.TempDir(), "rendered.yaml")
			if err := os.WriteFile(manifest, []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
			res, err := run(t, tl.kubeconform, "-strict", "-summary", "-output", "text",
				"-schema-location", tl.schemas+"/{{ .ResourceKind }}{{ .KindSuffix }}.json", manifest)
			if err != nil {
				t.Fatalf("kubeconform: %v\n%s", err, res)
			}
			m := regexp.MustCompile(`(\d+) resources found.*Valid: (\d+), Invalid: (\d+), Errors: (\d+), Skipped: (\d+)`).FindStringSubmatch(res)
			if m == nil || m[1] != m[2] || m[1] == "0" {
				t.Fatalf("kubeconform did not validate every object:\n%s", res)
			}
			t.Logf("%s", strings.TrimSpace(res))
		})
	}
}

// TestValidatorCatchesMistakes proves the validation above can fail: the
// same pipeline rejects a rendered object with an unknown field.
func TestValidatorCatchesMistakes(t *testing.T) {
	tl := needTools(t)
	out, err := tl.template(t, "-f", filepath.Join(chartDir, "ci", "default-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(out, "mountPropagation: Bidirectional", "mountPropagation: Bidirectional\n              readonly: true", 1)
	if bad == out {
		t.Fatal("no mountPropagation in the rendered chart")
	}
	manifest := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(manifest, []byte(bad), 0o644)
	res, err := run(t, tl.kubeconform, "-strict", "-schema-location", tl.schemas+"/{{ .ResourceKind }}{{ .KindSuffix }}.json", manifest)
	if err == nil || !strings.Contains(res, "'readonly' not allowed") {
		t.Fatalf("kubeconform accepted a volumeMount with an unknown field: %v\n%s", err, res)
	}
}

// TestValuesSchemaRejects: a typo or a wrong value fails at install time
// with a message that names it.
func TestValuesSchemaRejects(t *testing.T) {
	tl := needTools(t)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown key", []string{"--set", "nfsd.network.clusterIP=10.96.0.10", "--set", "nfsd.netwrok.mode=service"}, "netwrok"},
		{"unknown top-level key", []string{"--set", "nfsd.network.clusterIP=10.96.0.10", "--set", "storageClass.name=x"}, "storageClass"},
		{"onDelete value", []string{"-f", filepath.Join(chartDir, "ci", "default-values.yaml"), "--set", "storageClasses[0].name=a", "--set", "storageClasses[0].onDelete=purge"}, "onDelete"},
		{"network mode", []string{"--set", "nfsd.network.mode=nodePort", "--set", "nfsd.network.clusterIP=10.96.0.10"}, "mode"},
		{"duration", []string{"--set", "nfsd.network.clusterIP=10.96.0.10", "--set", "nfsd.lockGrace=15"}, "lockGrace"},
		{"address", []string{"--set", "nfsd.network.clusterIP=nfsd.example.com"}, "clusterIP"},
		{"node CIDR", []string{"--set", "nfsd.network.clusterIP=10.96.0.10", "--set", "networkPolicy.nfsFrom={10.0.0.1}"}, "nfsFrom"},
		{"two servers", []string{"--set", "nfsd.network.clusterIP=10.96.0.10", "--set", "nfsd.replicas=2"}, "replicas"},
		{"onDelete as a parameter", []string{"--set", "nfsd.network.clusterIP=10.96.0.10", "--set", "storageClasses[0].name=a", "--set", "storageClasses[0].parameters.onDelete=retain"}, "onDelete"},
		{"no service address", nil, "nfsd.network.clusterIP is required"},
		{"no host address", []string{"--set", "nfsd.network.mode=hostNetwork"}, "hostIP"},
		{"snapshot class without snapshotter", []string{"--set", "nfsd.network.clusterIP=10.96.0.10", "--set", "volumeSnapshotClass.enabled=true"}, "controller.snapshots.enabled"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := tl.template(t, c.args...)
			if err == nil {
				t.Fatalf("helm template accepted %v", c.args)
			}
			if !strings.Contains(out, c.want) {
				t.Fatalf("error does not name %q:\n%s", c.want, out)
			}
		})
	}
	// Without the snapshot API in the cluster, a snapshot class is refused
	// with the fix in the message.
	out, err := run(t, tl.helm, "template", "r1", chartDir, "--kube-version", kubeVersion,
		"-f", filepath.Join(chartDir, "ci", "full-values.yaml"))
	if err == nil || !strings.Contains(out, "install the snapshot CRDs") {
		t.Fatalf("snapshot class rendered for a cluster without the snapshot API: %v\n%s", err, out)
	}
}

// objects renders a value set and indexes the objects by "Kind/name".
func (tl tools) objects(t *testing.T, args ...string) map[string]map[string]any {
	t.Helper()
	out, err := tl.template(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	objs := map[string]map[string]any{}
	for _, doc := range strings.Split(out, "\n---") {
		var o map[string]any
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatalf("rendered YAML: %v\n%s", err, doc)
		}
		if o == nil {
			continue
		}
		key := fmt.Sprintf("%s/%s", o["kind"], get(o, "metadata", "name"))
		if _, dup := objs[key]; dup {
			t.Fatalf("two objects named %s", key)
		}
		objs[key] = o
	}
	return objs
}

// get walks maps by key and lists by index ("0").
func get(v any, path ...string) any {
	for _, p := range path {
		switch x := v.(type) {
		case map[string]any:
			v = x[p]
		case []any:
			var i int
			if _, err := fmt.Sscan(p, &i); err != nil || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

func str(v any) string { return fmt.Sprint(v) }

func container(t *testing.T, obj map[string]any, name string) map[string]any {
	t.Helper()
	for _, c := range get(obj, "spec", "template", "spec", "containers").([]any) {
		if c := c.(map[string]any); c["name"] == name {
			return c
		}
	}
	return nil
}

func strings_(v any) []string {
	var out []string
	if l, ok := v.([]any); ok {
		for _, x := range l {
			out = append(out, fmt.Sprint(x))
		}
	}
	return out
}

func must(t *testing.T, objs map[string]map[string]any, key string) map[string]any {
	t.Helper()
	o, ok := objs[key]
	if !ok {
		var keys []string
		for k := range objs {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		t.Fatalf("no %s among %v", key, keys)
	}
	return o
}

// TestDefaultInstall checks what the defaults promise: nfsd's address,
// ports and privileges, the token's file mode, the controller's flags,
// the node plugin's kubelet wiring, the CSIDriver and the class.
func TestDefaultInstall(t *testing.T) {
	tl := needTools(t)
	objs := tl.objects(t, "-f", filepath.Join(chartDir, "ci", "default-values.yaml"))

	svc := must(t, objs, "Service/r1-rwxnfs-nfsd")
	if ip := get(svc, "spec", "clusterIP"); ip != "10.96.100.100" {
		t.Errorf("Service clusterIP %v", ip)
	}
	var ports []string
	for _, p := range get(svc, "spec", "ports").([]any) {
		ports = append(ports, fmt.Sprintf("%v/%v", get(p, "port"), get(p, "protocol")))
	}
	for _, want := range []string{"2049/TCP", "2049/UDP", "111/TCP", "111/UDP", "9103/TCP"} {
		if !slices.Contains(ports, want) {
			t.Errorf("Service ports %v lack %s", ports, want)
		}
	}

	sts := must(t, objs, "StatefulSet/r1-rwxnfs-nfsd")
	nfsd := container(t, sts, "nfsd")
	caps := strings_(get(nfsd, "securityContext", "capabilities", "add"))
	slices.Sort(caps)
	if want := []string{"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "NET_BIND_SERVICE", "SETGID", "SETUID"}; !slices.Equal(caps, want) {
		t.Errorf("nfsd capabilities %v, want %v", caps, want)
	}
	if d := strings_(get(nfsd, "securityContext", "capabilities", "drop")); !slices.Equal(d, []string{"ALL"}) {
		t.Errorf("nfsd drops %v, want ALL", d)
	}
	if get(nfsd, "securityContext", "privileged") == true {
		t.Error("nfsd is privileged")
	}
	args := strings_(nfsd["args"])
	for _, want := range []string{"--listen=:2049", "--portmap-listen=:111", "--admin-listen=:9103",
		"--admin-token-file=/etc/rwxnfs/token/token", "--admin-tls-cert=/etc/rwxnfs/tls/tls.crt", "--no-default-volume"} {
		if !slices.Contains(args, want) {
			t.Errorf("nfsd args %v lack %s", args, want)
		}
	}
	if p := get(nfsd, "readinessProbe", "httpGet", "path"); p != "/healthz" {
		t.Errorf("nfsd readiness probe path %v", p)
	}
	for _, v := range get(sts, "spec", "template", "spec", "volumes").([]any) {
		if get(v, "name") == "admin-token" && str(get(v, "secret", "defaultMode")) != "256" {
			t.Errorf("token volume mode %v, want 0400 (256)", get(v, "secret", "defaultMode"))
		}
	}
	if g := get(sts, "spec", "template", "spec", "terminationGracePeriodSeconds"); str(g) != "45" {
		t.Errorf("grace %v", g)
	}
	if s := get(sts, "spec", "volumeClaimTemplates", "0", "spec", "resources", "requests", "storage"); s != "100Gi" {
		t.Errorf("nfsd data claim %v", s)
	}
	if get(sts, "spec", "persistentVolumeClaimRetentionPolicy", "whenDeleted") != "Retain" {
		t.Error("nfsd's claim is not retained on uninstall")
	}

	dep := must(t, objs, "Deployment/r1-rwxnfs-controller")
	csi := strings_(container(t, dep, "csi-nfs")["args"])
	for _, want := range []string{"--mode=controller", "--endpoint=unix:///csi/csi.sock",
		"--nfsd=name=nfsd-0,admin=10.96.100.100:9103,server=10.96.100.100",
		"--admin-token-file=/etc/rwxnfs/token/token", "--admin-tls-ca=/etc/rwxnfs/tls/ca.crt"} {
		if !slices.Contains(csi, want) {
			t.Errorf("controller args %v lack %s", csi, want)
		}
	}
	if !slices.Contains(strings_(container(t, dep, "csi-provisioner")["args"]), "--extra-create-metadata") {
		t.Error("csi-provisioner without --extra-create-metadata")
	}
	if container(t, dep, "csi-resizer") == nil {
		t.Error("no csi-resizer")
	}
	if container(t, dep, "csi-snapshotter") != nil {
		t.Error("csi-snapshotter runs though snapshots are off")
	}

	ds := must(t, objs, "DaemonSet/r1-rwxnfs-node")
	node := container(t, ds, "csi-nfs")
	nargs := strings_(node["args"])
	for _, want := range []string{"--mode=node", "--register", "--kubelet-dir=/var/lib/kubelet",
		"--kubelet-registration-path=/var/lib/kubelet/plugins/nfs.rwxnfs.io/csi.sock", "--node-id=$(NODE_NAME)"} {
		if !slices.Contains(nargs, want) {
			t.Errorf("node args %v lack %s", nargs, want)
		}
	}
	if get(node, "securityContext", "privileged") != true {
		t.Error("node plugin not privileged (mounting needs it)")
	}
	bidi := false
	for _, m := range node["volumeMounts"].([]any) {
		if get(m, "mountPath") == "/var/lib/kubelet" && get(m, "mountPropagation") == "Bidirectional" {
			bidi = true
		}
	}
	if !bidi {
		t.Error("kubelet dir not mounted Bidirectional")
	}
	if get(ds, "spec", "template", "spec", "hostNetwork") != true {
		t.Error("node plugin not in the host network")
	}
	if container(t, ds, "rpcbind") == nil || container(t, ds, "rpc-statd") == nil {
		t.Error("no rpcbind/rpc-statd containers")
	}
	if container(t, ds, "node-driver-registrar") != nil {
		t.Error("registrar sidecar in driver-registration mode")
	}

	drv := must(t, objs, "CSIDriver/nfs.rwxnfs.io")
	if get(drv, "spec", "attachRequired") != false || get(drv, "spec", "fsGroupPolicy") != "File" {
		t.Errorf("CSIDriver spec %v", drv["spec"])
	}
	sc := must(t, objs, "StorageClass/rwxnfs")
	if sc["provisioner"] != "nfs.rwxnfs.io" || get(sc, "parameters", "onDelete") != "delete" || sc["allowVolumeExpansion"] != true {
		t.Errorf("StorageClass %v", sc)
	}
	if get(sc, "metadata", "annotations") != nil {
		t.Error("the class is marked default though default is false")
	}
	if tok := get(must(t, objs, "Secret/r1-rwxnfs-admin-token"), "data", "token"); len(str(tok)) < 60 {
		t.Errorf("token %q too short", tok)
	}
	must(t, objs, "Secret/r1-rwxnfs-admin-tls")
	must(t, objs, "PodDisruptionBudget/r1-rwxnfs-nfsd")
	np := must(t, objs, "NetworkPolicy/r1-rwxnfs-nfsd")
	if get(np, "spec", "ingress", "1", "from", "0", "podSelector", "matchLabels", "app.kubernetes.io/component") != "controller" {
		t.Errorf("admin API not limited to the controller: %v", get(np, "spec", "ingress"))
	}
	if _, ok := objs["VolumeSnapshotClass/rwxnfs"]; ok {
		t.Error("VolumeSnapshotClass rendered though disabled")
	}
	if _, ok := objs["Role/r1-rwxnfs-controller"]; ok {
		t.Error("leader-election Role with one replica")
	}
}

// TestLeastPrivilegeRBAC: the controller's ClusterRole names resources and
// verbs explicitly, never touches Secrets, Pods or Nodes, and grows only
// by the snapshot rules when snapshots are on.
func TestLeastPrivilegeRBAC(t *testing.T) {
	tl := needTools(t)
	for _, f := range []string{"default-values.yaml", "full-values.yaml"} {
		objs := tl.objects(t, "-f", filepath.Join(chartDir, "ci", f))
		role := must(t, objs, "ClusterRole/r1-rwxnfs-controller")
		var resources []string
		for _, r := range role["rules"].([]any) {
			res := strings_(get(r, "resources"))
			verbs := strings_(get(r, "verbs"))
			for _, x := range append(append(res, verbs...), strings_(get(r, "apiGroups"))...) {
				if x == "*" {
					t.Errorf("%s: wildcard in rule %v", f, r)
				}
			}
			resources = append(resources, res...)
		}
		for _, forbidden := range []string{"secrets", "pods", "nodes", "csinodes", "volumeattachments", "configmaps"} {
			if slices.Contains(resources, forbidden) {
				t.Errorf("%s: controller may touch %s", f, forbidden)
			}
		}
		snap := slices.Contains(resources, "volumesnapshotcontents")
		if snap != (f == "full-values.yaml") {
			t.Errorf("%s: snapshot rules present=%v", f, snap)
		}
		for key, o := range objs {
			if o["kind"] == "ClusterRoleBinding" || o["kind"] == "RoleBinding" {
				if s := get(o, "subjects", "0", "name"); s != "r1-rwxnfs-controller" {
					t.Errorf("%s: %s binds %v", f, key, s)
				}
			}
		}
	}
}

// TestFullValues: the optional parts appear, wired as documented.
func TestFullValues(t *testing.T) {
	tl := needTools(t)
	objs := tl.objects(t, "-f", filepath.Join(chartDir, "ci", "full-values.yaml"))
	dep := must(t, objs, "Deployment/r1-rwxnfs-controller")
	if c := container(t, dep, "csi-nfs"); c["image"] != "registry.example.com/storage/rwxnfs/csi-nfs-controller:1.2.3" {
		t.Errorf("controller image %v", c["image"])
	}
	snap := container(t, dep, "csi-snapshotter")
	if snap == nil || !slices.Contains(strings_(snap["args"]), "--leader-election") {
		t.Errorf("snapshotter %v", snap)
	}
	if !slices.Contains(strings_(container(t, dep, "csi-provisioner")["args"]), "--timeout=10m") {
		t.Error("provisioner timeout not passed")
	}
	must(t, objs, "Role/r1-rwxnfs-controller")
	must(t, objs, "RoleBinding/r1-rwxnfs-controller")
	vsc := must(t, objs, "VolumeSnapshotClass/rwxnfs")
	if vsc["driver"] != "nfs.rwxnfs.io" || vsc["deletionPolicy"] != "Retain" {
		t.Errorf("VolumeSnapshotClass %v", vsc)
	}

	ds := must(t, objs, "DaemonSet/r1-rwxnfs-node")
	kd := "/var/snap/microk8s/common/var/lib/kubelet"
	reg := container(t, ds, "node-driver-registrar")
	if reg == nil || !slices.Contains(strings_(reg["args"]), "--kubelet-registration-path="+kd+"/plugins/nfs.rwxnfs.io/csi.sock") {
		t.Errorf("registrar %v", reg)
	}
	if container(t, ds, "liveness-probe") == nil {
		t.Error("no livenessprobe sidecar")
	}
	if slices.Contains(strings_(container(t, ds, "csi-nfs")["args"]), "--register") {
		t.Error("driver registers itself as well as the sidecar")
	}
	var hostPaths []string
	for _, v := range get(ds, "spec", "template", "spec", "volumes").([]any) {
		if p := get(v, "hostPath", "path"); p != nil {
			hostPaths = append(hostPaths, str(p))
		}
	}
	for _, want := range []string{kd, kd + "/plugins/nfs.rwxnfs.io", kd + "/plugins_registry"} {
		if !slices.Contains(hostPaths, want) {
			t.Errorf("node hostPaths %v lack %s", hostPaths, want)
		}
	}

	sts := must(t, objs, "StatefulSet/r1-rwxnfs-nfsd")
	if get(sts, "spec", "volumeClaimTemplates") != nil {
		t.Error("claim template with hostPath storage")
	}
	found := false
	for _, v := range get(sts, "spec", "template", "spec", "volumes").([]any) {
		if get(v, "name") == "data" && get(v, "hostPath", "path") == "/srv/rwxnfs" {
			found = true
		}
	}
	if !found {
		t.Error("no hostPath data volume")
	}

	def := must(t, objs, "StorageClass/rwxnfs")
	if get(def, "metadata", "annotations", "storageclass.kubernetes.io/is-default-class") != "true" {
		t.Error("default class not annotated")
	}
	if get(def, "parameters", "onDelete") != "archive" || get(def, "parameters", "uid") != "1000" ||
		get(def, "parameters", "subDir") != "${pvc.metadata.namespace}-${pvc.metadata.name}" {
		t.Errorf("class parameters %v", def["parameters"])
	}
	if !slices.Equal(strings_(def["mountOptions"]), []string{"nconnect=4", "hard"}) {
		t.Errorf("mountOptions %v", def["mountOptions"])
	}
	ret := must(t, objs, "StorageClass/rwxnfs-retain")
	if def["allowVolumeExpansion"] != true || ret["allowVolumeExpansion"] != false {
		t.Errorf("allowVolumeExpansion: unset %v (want true), false %v", def["allowVolumeExpansion"], ret["allowVolumeExpansion"])
	}
	if get(ret, "parameters", "onDelete") != "retain" || ret["reclaimPolicy"] != "Retain" || ret["volumeBindingMode"] != "WaitForFirstConsumer" {
		t.Errorf("retain class %v", ret)
	}
	np := must(t, objs, "NetworkPolicy/r1-rwxnfs-nfsd")
	if c := get(np, "spec", "ingress", "0", "from", "1", "ipBlock", "cidr"); c != "10.0.1.0/24" {
		t.Errorf("NFS ingress %v", get(np, "spec", "ingress", "0"))
	}
	if s := get(must(t, objs, "PodDisruptionBudget/r1-rwxnfs-nfsd"), "spec", "maxUnavailable"); str(s) != "1" {
		t.Errorf("PDB maxUnavailable %v", s)
	}
}

// TestHostNetwork: with no kube-proxy nodes reach nfsd at a node address;
// nothing of the Service remains, nfsd binds only that address.
func TestHostNetwork(t *testing.T) {
	tl := needTools(t)
	objs := tl.objects(t, "-f", filepath.Join(chartDir, "ci", "hostnetwork-values.yaml"))
	if _, ok := objs["Service/r1-rwxnfs-nfsd"]; ok {
		t.Error("Service rendered in hostNetwork mode")
	}
	sts := must(t, objs, "StatefulSet/r1-rwxnfs-nfsd")
	if get(sts, "spec", "template", "spec", "hostNetwork") != true {
		t.Error("nfsd not in the host network")
	}
	args := strings_(container(t, sts, "nfsd")["args"])
	for _, want := range []string{"--listen=192.168.50.10:2049", "--portmap-listen=192.168.50.10:111", "--admin-listen=192.168.50.10:9103"} {
		if !slices.Contains(args, want) {
			t.Errorf("nfsd args %v lack %s", args, want)
		}
	}
	if h := get(container(t, sts, "nfsd"), "readinessProbe", "httpGet", "host"); h != "192.168.50.10" {
		t.Errorf("readiness probe host %v, want the address nfsd listens on", h)
	}
	if slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--admin-tls") }) {
		t.Error("TLS flags with TLS off")
	}
	csi := strings_(container(t, must(t, objs, "Deployment/r1-rwxnfs-controller"), "csi-nfs")["args"])
	if !slices.Contains(csi, "--nfsd=name=nfsd-0,admin=192.168.50.10:9103,server=192.168.50.10") {
		t.Errorf("controller args %v", csi)
	}
	for _, v := range get(sts, "spec", "template", "spec", "volumes").([]any) {
		if get(v, "name") == "admin-token" && get(v, "secret", "secretName") != "my-admin-token" {
			t.Errorf("token secret %v", get(v, "secret", "secretName"))
		}
	}
	for _, key := range []string{"Secret/r1-rwxnfs-admin-token", "Secret/r1-rwxnfs-admin-tls", "NetworkPolicy/r1-rwxnfs-nfsd"} {
		if _, ok := objs[key]; ok {
			t.Errorf("%s rendered", key)
		}
	}
	ds := must(t, objs, "DaemonSet/r1-rwxnfs-node")
	if container(t, ds, "rpcbind") != nil {
		t.Error("rpcbind in the pod with rpcServices=false")
	}
}

// TestIPv6Address: an IPv6 address is bracketed where a port follows.
func TestIPv6Address(t *testing.T) {
	tl := needTools(t)
	objs := tl.objects(t, "-f", filepath.Join(chartDir, "ci", "ipv6-values.yaml"))
	csi := strings_(container(t, must(t, objs, "Deployment/r1-rwxnfs-controller"), "csi-nfs")["args"])
	if !slices.Contains(csi, "--nfsd=name=nfsd-0,admin=[fd00:10:96::100]:9103,server=fd00:10:96::100") {
		t.Errorf("controller args %v", csi)
	}
	if _, ok := objs["Secret/r1-rwxnfs-admin-tls"]; ok {
		t.Error("generated TLS secret alongside an existing one")
	}
}
