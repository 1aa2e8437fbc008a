package csi

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	adminv1 "github.com/rwxnfs/rwxnfs/api/admin/v1"
	"github.com/rwxnfs/rwxnfs/pkg/admin"
)

// StorageClass parameters this driver reads itself; the rest are volume
// settings that admin.ParseCreate turns into the API's typed options.
const (
	paramServer = "server" // NFS address nodes mount from (overrides the nfsd's server=)
	paramSubDir = "subDir" // template of the volume's directory name on nfsd
	paramNFSD   = "nfsd"   // which nfsd to place the volume on
)

// Keys csi-provisioner adds with --extra-create-metadata; subDir
// templates read them.
const (
	metaPVCName      = "csi.storage.k8s.io/pvc/name"
	metaPVCNamespace = "csi.storage.k8s.io/pvc/namespace"
	metaPVName       = "csi.storage.k8s.io/pv/name"
	provisionerKeys  = "csi.storage.k8s.io/"
)

// createParams is a parsed StorageClass.
type createParams struct {
	server  string // "" : the nfsd's own
	subDir  string // rendered; "": the id follows from the volume name
	nfsd    string // "": the driver places it
	options *adminv1.VolumeOptions
	reclaim adminv1.ReclaimMode
}

// parseCreateParams reads StorageClass parameters (and the provisioner's
// csi.storage.k8s.io/* keys, which it uses only to fill templates).
func parseCreateParams(p map[string]string) (createParams, error) {
	var cp createParams
	rest := make(map[string]string, len(p))
	for k, v := range p {
		switch {
		case strings.HasPrefix(k, provisionerKeys):
			// csi-provisioner's own (pvc/pv names, secrets' names): never settings.
		case k == paramServer:
			if strings.TrimSpace(v) == "" || strings.ContainsAny(v, "/ ,") {
				return cp, fmt.Errorf("parameter server=%q: want a host name or address that nodes mount from", v)
			}
			cp.server = v
		case k == paramNFSD:
			if err := checkNFSDName(v); err != nil {
				return cp, fmt.Errorf("parameter nfsd: %v", err)
			}
			cp.nfsd = v
		case k == paramSubDir:
		default:
			rest[k] = v
		}
	}
	if t, ok := p[paramSubDir]; ok {
		dir, err := renderSubDir(t, p)
		if err != nil {
			return cp, err
		}
		cp.subDir = dir
	}
	var err error
	cp.options, cp.reclaim, err = admin.ParseCreate(rest)
	if err != nil {
		var pe *admin.ParamError
		if errors.As(err, &pe) && strings.HasPrefix(pe.Msg, "unknown parameter") {
			return cp, fmt.Errorf("%s; this driver also reads %s, %s and %s", pe.Msg, paramServer, paramSubDir, paramNFSD)
		}
		return cp, err
	}
	return cp, nil
}

// templateVar is ${name} in a subDir template.
var templateVar = regexp.MustCompile(`\$\{([^}]*)\}`)

// subDirVars maps template variables to the provisioner key that fills them.
var subDirVars = map[string]string{
	"pvc.metadata.namespace": metaPVCNamespace,
	"pvc.metadata.name":      metaPVCName,
	"pv.metadata.name":       metaPVName,
}

// renderSubDir fills a subDir template such as
// "${pvc.metadata.namespace}-${pvc.metadata.name}" from the
// provisioner's keys. The result names the volume on nfsd, so it must be
// a valid volume id.
func renderSubDir(t string, p map[string]string) (string, error) {
	var bad error
	out := templateVar.ReplaceAllStringFunc(t, func(m string) string {
		name := m[2 : len(m)-1]
		key, ok := subDirVars[name]
		if !ok {
			if bad == nil {
				vars := make([]string, 0, len(subDirVars))
				for v := range subDirVars {
					vars = append(vars, "${"+v+"}")
				}
				sort.Strings(vars)
				bad = fmt.Errorf("parameter subDir=%q: unknown variable ${%s} (known: %s)", t, name, strings.Join(vars, ", "))
			}
			return ""
		}
		v, ok := p[key]
		if !ok && bad == nil {
			bad = fmt.Errorf("parameter subDir=%q uses ${%s}, but the request has no %s: run csi-provisioner with --extra-create-metadata", t, name, key)
		}
		return v
	})
	if bad != nil {
		return "", bad
	}
	if strings.Contains(out, "$") {
		return "", fmt.Errorf("parameter subDir=%q: a $ that is not a ${variable}", t)
	}
	if !validID.MatchString(out) || len(out) > maxIDLen {
		return "", fmt.Errorf("parameter subDir=%q gives %q, which cannot name a volume: want 1-%d of A-Z a-z 0-9 . _ - (no /), starting with a letter or digit", t, out, maxIDLen)
	}
	return out, nil
}
