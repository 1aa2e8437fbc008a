package main

import (
	"bytes"
	"strings"
	"testing"
)

// The command line refuses what cannot work, saying why, before serving.
func TestCommandLine(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--version"}, 0, "csi-nfs "},
		{[]string{"--mode", "both"}, 1, `--mode \"both\": want controller, node or all`},
		{[]string{"--mode", "controller", "--endpoint", "unix://" + dir + "/c.sock"}, 1, "needs at least one --nfsd"},
		{[]string{"--mode", "controller", "--nfsd", "name=main,admin=unix:/x.sock,server=10.0.0.1", "--endpoint", "unix://" + dir + "/c.sock"}, 1, "--admin-token-file"},
		{[]string{"--nfsd", "name=Main,admin=x,server=y"}, 2, "nfsd name"},
		{[]string{"--mode", "node", "--endpoint", "ftp://x"}, 1, "want unix:///path/csi.sock or tcp://host:port"},
		{[]string{"--log-format", "xml"}, 2, "want text or json"},
		{[]string{"--default-volume-size", "0"}, 2, "positive size"},
		{[]string{"--mode", "controller", "--register"}, 1, ""},
		{[]string{"stray"}, 2, "unexpected arguments"},
	} {
		var out, errOut bytes.Buffer
		code := run(c.args, &out, &errOut)
		got := out.String() + errOut.String()
		if code != c.code || !strings.Contains(got, c.want) {
			t.Errorf("%v: exit %d, want %d; output %q, want it to contain %q", c.args, code, c.code, got, c.want)
		}
	}
}
