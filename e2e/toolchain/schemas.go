package toolchain

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"
)

// SnapshotCRDs returns the VolumeSnapshot, VolumeSnapshotContent and
// VolumeSnapshotClass CRDs of external-snapshotter's client module at the
// sidecar's release (they are installed once per cluster, by its admin).
func SnapshotCRDs(ctx context.Context) ([]string, error) {
	dir, err := ModuleDir(ctx, "github.com/kubernetes-csi/external-snapshotter/client/v8", SnapshotterVersion)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, k := range []string{"volumesnapshotclasses", "volumesnapshotcontents", "volumesnapshots"} {
		p := filepath.Join(dir, "config", "crd", "snapshot.storage.k8s.io_"+k+".yaml")
		if _, err := os.Stat(p); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// Schemas returns a directory of JSON schemas for kubeconform
// (-schema-location DIR/{{.ResourceKind}}{{.KindSuffix}}.json), made on
// this machine from Kubernetes' own OpenAPI document (api/openapi-spec/
// swagger.json in the k8s.io/kubernetes module) and the snapshot CRDs.
// They are strict: an unknown field anywhere is an error, as it is for
// the apiserver's field validation.
func (c *Cache) Schemas(ctx context.Context) (string, error) {
	dir := filepath.Join(c.Dir, "schemas-"+KubernetesVersion+"-snapshot-"+SnapshotterVersion)
	if _, err := os.Stat(filepath.Join(dir, ".done")); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return "", err
	}
	unlock, err := lockFile(filepath.Join(c.Dir, ".schemas.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(filepath.Join(dir, ".done")); err == nil {
		return dir, nil
	}
	kdir, err := ModuleDir(ctx, "k8s.io/kubernetes", KubernetesVersion)
	if err != nil {
		return "", err
	}
	crds, err := SnapshotCRDs(ctx)
	if err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(c.Dir, ".schemas-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	n, err := WriteSchemas(filepath.Join(kdir, "api", "openapi-spec", "swagger.json"), crds, tmp)
	if err != nil {
		return "", err
	}
	os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	c.logf("wrote %d schemas to %s", n, dir)
	return dir, os.WriteFile(filepath.Join(dir, ".done"), nil, 0o644)
}

// WriteSchemas writes one standalone strict schema per kind found in a
// Kubernetes OpenAPI v2 document and in CRD files, named the way
// kubeconform looks them up: <kind>-<first part of group>-<version>.json
// (<kind>-<version>.json for the core group). It returns how many.
func WriteSchemas(swagger string, crds []string, outDir string) (int, error) {
	data, err := os.ReadFile(swagger)
	if err != nil {
		return 0, err
	}
	var doc struct {
		Definitions map[string]map[string]any `json:"definitions"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return 0, fmt.Errorf("%s: %w", swagger, err)
	}
	n := 0
	for name, def := range doc.Definitions {
		gvks, _ := def["x-kubernetes-group-version-kind"].([]any)
		for _, g := range gvks {
			gvk, _ := g.(map[string]any)
			group, _ := gvk["group"].(string)
			version, _ := gvk["version"].(string)
			kind, _ := gvk["kind"].(string)
			schema := strictCopy(def).(map[string]any)
			defs := map[string]any{}
			closure(doc.Definitions, def, defs)
			delete(defs, name)
			if len(defs) > 0 {
				schema["definitions"] = defs
			}
			if err := writeJSON(filepath.Join(outDir, SchemaFile(kind, group, version)), schema); err != nil {
				return n, err
			}
			n++
		}
	}
	for _, path := range crds {
		m, err := crdSchemas(path, outDir)
		if err != nil {
			return n, fmt.Errorf("%s: %w", path, err)
		}
		n += m
	}
	return n, nil
}

// SchemaFile is kubeconform's file name for a kind.
func SchemaFile(kind, group, version string) string {
	name := strings.ToLower(kind)
	if group != "" {
		name += "-" + strings.ToLower(strings.Split(group, ".")[0])
	}
	return name + "-" + strings.ToLower(version) + ".json"
}

// closure adds to defs, strictly rewritten, every definition node refers
// to, directly or not.
func closure(all map[string]map[string]any, node any, defs map[string]any) {
	switch v := node.(type) {
	case map[string]any:
		if ref, ok := v["$ref"].(string); ok {
			name := strings.TrimPrefix(ref, "#/definitions/")
			if _, seen := defs[name]; !seen {
				if name == quantityDef {
					defs[name] = quantity
				} else if d, ok := all[name]; ok {
					defs[name] = strictCopy(d)
					closure(all, d, defs)
				}
			}
		}
		for _, child := range v {
			closure(all, child, defs)
		}
	case []any:
		for _, child := range v {
			closure(all, child, defs)
		}
	}
}

// quantityDef is resource.Quantity, a string in the OpenAPI document
// that the apiserver also accepts as a number.
const quantityDef = "io.k8s.apimachinery.pkg.api.resource.Quantity"

var (
	intOrString = map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}}
	quantity    = map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "number"}}}
)

// strictCopy copies a schema node: objects with declared properties
// refuse others; int-or-string and quantities take both forms the
// apiserver accepts (YAML 2049 and "2049", 1 and "1Gi").
func strictCopy(node any) any {
	switch v := node.(type) {
	case map[string]any:
		if v["format"] == "int-or-string" || v["x-kubernetes-int-or-string"] == true {
			return intOrString
		}
		out := make(map[string]any, len(v)+1)
		for k, child := range v {
			if k == "x-kubernetes-group-version-kind" {
				out[k] = child
				continue
			}
			out[k] = strictCopy(child)
		}
		_, props := v["properties"]
		_, addl := v["additionalProperties"]
		if props && !addl && v["x-kubernetes-preserve-unknown-fields"] != true {
			out["additionalProperties"] = false
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, child := range v {
			out[i] = strictCopy(child)
		}
		return out
	default:
		return v
	}
}

func crdSchemas(path, outDir string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	var crd struct {
		Spec struct {
			Group string `json:"group"`
			Names struct {
				Kind string `json:"kind"`
			} `json:"names"`
			Versions []struct {
				Name   string `json:"name"`
				Served bool   `json:"served"`
				Schema struct {
					OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &crd); err != nil {
		return 0, err
	}
	n := 0
	for _, v := range crd.Spec.Versions {
		if !v.Served || v.Schema.OpenAPIV3Schema == nil {
			continue
		}
		schema := strictCopy(v.Schema.OpenAPIV3Schema).(map[string]any)
		if err := writeJSON(filepath.Join(outDir, SchemaFile(crd.Spec.Names.Kind, crd.Spec.Group, v.Name)), schema); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func writeJSON(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}
