package version

import (
	"runtime/debug"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	for _, c := range []struct {
		bi   debug.BuildInfo
		want string
	}{
		{debug.BuildInfo{}, "(devel)"},
		{debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}}, "v1.2.3"},
		{debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "826a6b5c1d2e3f4a5b6c"}, {Key: "vcs.modified", Value: "true"}}}, "(devel) 826a6b5c1d2e+dirty"},
		{debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20260101000000-826a6b5c1d2e"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "826a6b5c1d2e3f4a5b6c"}}}, "v0.0.0-20260101000000-826a6b5c1d2e"},
	} {
		if got := fromBuildInfo(&c.bi); got != c.want {
			t.Errorf("%+v: %q, want %q", c.bi, got, c.want)
		}
	}
	if String() == "" {
		t.Fatal("empty version")
	}
}
