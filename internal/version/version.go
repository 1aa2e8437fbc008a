// Package version names the build of a binary of this module from the
// information the Go toolchain stamps into it.
package version

import (
	"runtime/debug"
	"strings"
)

// String is the module version ("(devel)" when built from a checkout),
// the VCS revision and "+dirty" for a modified tree, if stamped; e.g.
// "(devel) 826a6b5c1d2e+dirty". "unknown" without build information.
func String() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	return fromBuildInfo(bi)
}

func fromBuildInfo(bi *debug.BuildInfo) string {
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev string
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" || strings.Contains(v, rev[:min(len(rev), 12)]) {
		return v
	}
	v += " " + rev[:min(len(rev), 12)]
	if dirty {
		v += "+dirty"
	}
	return v
}
