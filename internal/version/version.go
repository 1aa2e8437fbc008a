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

// Build is what the toolchain stamped into the binary, each field
// "unknown" when it did not.
type Build struct {
	Version   string // the module version, "(devel)" from a checkout
	Revision  string // the VCS commit, with "+dirty" for a modified tree
	GoVersion string // the Go toolchain that built it
}

// Get reads the binary's build information.
func Get() Build {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Build{Version: "unknown", Revision: "unknown", GoVersion: "unknown"}
	}
	return buildOf(bi)
}

func buildOf(bi *debug.BuildInfo) Build {
	b := Build{Version: bi.Main.Version, Revision: "unknown", GoVersion: bi.GoVersion}
	if b.Version == "" {
		b.Version = "(devel)"
	}
	if b.GoVersion == "" {
		b.GoVersion = "unknown"
	}
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty && b.Revision != "unknown" {
		b.Revision += "+dirty"
	}
	return b
}
