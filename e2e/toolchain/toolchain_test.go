package toolchain

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestReplaces(t *testing.T) {
	gomod := filepath.Join(t.TempDir(), "go.mod")
	os.WriteFile(gomod, []byte(`module example.com/x

require k8s.io/api v0.33.13

replace (
	k8s.io/api => ./staging/src/k8s.io/api // the module's own tree
	k8s.io/cli-runtime v0.1.0 => k8s.io/cli-runtime v0.36.1
	go.etcd.io/etcd => ./FORBIDDEN_DEPENDENCY
)

replace github.com/a/b/client/v8 => ./client
replace go.etcd.io/etcd/api/v3 => ../api
`), 0o644)
	got, err := replaces(gomod, "v9.9.9")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"k8s.io/api => k8s.io/api v9.9.9",
		"k8s.io/cli-runtime => k8s.io/cli-runtime v0.36.1",
		"github.com/a/b/client/v8 => github.com/a/b/client/v8 v9.9.9",
		"go.etcd.io/etcd/api/v3 => go.etcd.io/etcd/api/v3 v9.9.9",
	}
	if !slices.Equal(got, want) {
		t.Errorf("replaces:\n got %q\nwant %q", got, want)
	}
	if _, err := replaces(gomod, ""); err == nil {
		t.Error("a replace into the module's tree with no version to stand for it was accepted")
	}
}

func TestPkgBinaryName(t *testing.T) {
	for pkg, want := range map[string]string{
		"go.etcd.io/etcd/server/v3":                    "server",
		"helm.sh/helm/v3/cmd/helm":                     "helm",
		"k8s.io/kubernetes/cmd/kube-apiserver":         "kube-apiserver",
		"github.com/yannh/kubeconform/cmd/kubeconform": "kubeconform",
	} {
		if got := pkgBinaryName(pkg); got != want {
			t.Errorf("pkgBinaryName(%s) = %s, want %s", pkg, got, want)
		}
	}
}

func TestSchemaFile(t *testing.T) {
	for _, c := range [][4]string{
		{"Deployment", "apps", "v1", "deployment-apps-v1.json"},
		{"Service", "", "v1", "service-v1.json"},
		{"VolumeSnapshotClass", "snapshot.storage.k8s.io", "v1", "volumesnapshotclass-snapshot-v1.json"},
		{"ClusterRole", "rbac.authorization.k8s.io", "v1", "clusterrole-rbac-v1.json"},
	} {
		if got := SchemaFile(c[0], c[1], c[2]); got != c[3] {
			t.Errorf("SchemaFile(%v) = %s, want %s", c[:3], got, c[3])
		}
	}
}

// TestWriteSchemas: each kind becomes a standalone schema holding the
// definitions it refers to, strict (additionalProperties false where
// properties are declared), with int-or-string and quantities taking
// both forms.
func TestWriteSchemas(t *testing.T) {
	dir := t.TempDir()
	swagger := filepath.Join(dir, "swagger.json")
	os.WriteFile(swagger, []byte(`{"definitions": {
  "io.k8s.api.demo.v1.Widget": {
    "type": "object",
    "properties": {"spec": {"$ref": "#/definitions/io.k8s.api.demo.v1.WidgetSpec"}},
    "x-kubernetes-group-version-kind": [{"group": "demo.example.com", "kind": "Widget", "version": "v1"}]
  },
  "io.k8s.api.demo.v1.WidgetSpec": {
    "type": "object",
    "properties": {
      "port": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.util.intstr.IntOrString"},
      "size": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.api.resource.Quantity"},
      "labels": {"type": "object", "additionalProperties": {"type": "string"}}
    }
  },
  "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"type": "string", "format": "int-or-string"},
  "io.k8s.apimachinery.pkg.api.resource.Quantity": {"type": "string"},
  "io.k8s.api.demo.v1.Unused": {"type": "object", "properties": {"x": {"type": "string"}}}
}}`), 0o644)
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	n, err := WriteSchemas(swagger, nil, out)
	if err != nil || n != 1 {
		t.Fatalf("WriteSchemas: %d, %v", n, err)
	}
	data, err := os.ReadFile(filepath.Join(out, "widget-demo-v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	if s["additionalProperties"] != false {
		t.Error("top level not strict")
	}
	defs := s["definitions"].(map[string]any)
	if _, ok := defs["io.k8s.api.demo.v1.Unused"]; ok {
		t.Error("a definition nothing refers to was included")
	}
	spec := defs["io.k8s.api.demo.v1.WidgetSpec"].(map[string]any)
	if spec["additionalProperties"] != false {
		t.Error("nested object not strict")
	}
	if labels := spec["properties"].(map[string]any)["labels"].(map[string]any); labels["additionalProperties"] == false {
		t.Error("a map's free keys were made strict")
	}
	if _, ok := defs["io.k8s.apimachinery.pkg.util.intstr.IntOrString"].(map[string]any)["oneOf"]; !ok {
		t.Error("int-or-string not both forms")
	}
	q := defs["io.k8s.apimachinery.pkg.api.resource.Quantity"].(map[string]any)
	if q["oneOf"] == nil {
		t.Error("quantity not both forms")
	}
}
