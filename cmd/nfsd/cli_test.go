package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rwxnfs/rwxnfs/pkg/nfsclient"
)

// nfsdRun runs the binary as a user would and returns its exit code,
// stdout and stderr.
func nfsdRun(t *testing.T, dir string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), "RWXNFS_BE_NFSD=1")
	cmd.Dir = dir
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("nfsd %q: %v", args, err)
	}
	return code, o.String(), e.String()
}

// expect runs nfsd and checks its exit code and that its output holds
// each of want.
func expect(t *testing.T, code int, want []string, args ...string) string {
	t.Helper()
	got, o, e := nfsdRun(t, t.TempDir(), args...)
	if got != code {
		t.Errorf("nfsd %q: exit %d, want %d\nstdout: %s\nstderr: %s", args, got, code, o, e)
	}
	for _, w := range want {
		if !strings.Contains(o+e, w) {
			t.Errorf("nfsd %q: output lacks %q\nstdout: %s\nstderr: %s", args, w, o, e)
		}
	}
	return o + e
}

// Item 1 of issue 14: commands, --help everywhere, errors that name the
// word, exit codes 0/1/2; nothing of this starts a server.
func TestCommandStructure(t *testing.T) {
	expect(t, 0, []string{"nfsd ", "commit: ", "go: go1."}, "version")
	expect(t, 0, []string{"nfsd "}, "--version")
	for _, help := range [][]string{{"--help"}, {"help"}, {"-h"}} {
		out := expect(t, 0, []string{"serve", "admin", "version", "Examples:"}, help...)
		if strings.Contains(out, "--max-conns-per-client") {
			t.Errorf("nfsd %v lists serve's flags:\n%s", help, out)
		}
	}
	// Every command has a description and examples.
	for _, c := range [][]string{{"serve"}, {"admin"}, {"version"}, {"admin", "list"}, {"admin", "create"},
		{"admin", "expand"}, {"admin", "clients"}, {"admin", "deleted"}, {"admin", "restore"}, {"admin", "copies"}, {"admin", "update"}, {"admin", "delete"}, {"admin", "show"}, {"admin", "snapshot"},
		{"admin", "snapshot", "create"}, {"admin", "capacity"}, {"admin", "info"}, {"admin", "locks"},
		{"admin", "locks", "list"}, {"admin", "locks", "release"}} {
		expect(t, 0, []string{"Usage:", "Examples:", "nfsd " + strings.Join(c, " ")}, append(c, "--help")...)
	}
	expect(t, 0, []string{"--admin-listen", "--init", "--root"}, "serve", "--help")
	expect(t, 0, []string{"16 characters", "admin-token", "--token-file"}, "admin", "--help")

	// Unknown words and extra arguments: exit 2, the word named on the
	// first line, no usage text in front of it.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"frobnicate"}, `unknown command "frobnicate" for "nfsd"`},
		{[]string{"version", "extra"}, `unexpected argument "extra"`},
		{[]string{"serve", "extra"}, `unexpected argument "extra"`},
		{[]string{"admin", "frob"}, `unknown command "frob" for "nfsd admin"`},
		{[]string{"admin"}, "missing command"},
		{[]string{"admin", "snapshot", "frob"}, `unknown command "frob" for "nfsd admin snapshot"`},
		{[]string{"admin", "create", "web"}, "missing <size>"},
		{[]string{"admin", "show"}, "missing <volume>"},
		{[]string{"admin", "show", "a", "b"}, `unexpected argument "b"`},
		{[]string{"admin", "list", "extra"}, `unexpected argument "extra"`},
		{[]string{"admin", "locks", "release", "a", "b"}, `unexpected argument "b"`},
		{[]string{"serve", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"version", "--root", "x"}, "unknown flag: --root"},
		{[]string{"admin", "list", "--listen", "x"}, "unknown flag: --listen"},
	} {
		out := expect(t, 2, []string{c.want}, c.args...)
		if first, _, _ := strings.Cut(out, "\n"); !strings.Contains(first, c.want) {
			t.Errorf("nfsd %q: the first line does not say what is wrong:\n%s", c.args, out)
		}
	}
	// Bare nfsd still serves, and says so.
	expect(t, 1, []string{"no command given: serving", "does not exist"}, "--root", filepath.Join(t.TempDir(), "typo"))
}

// Item 4: no silent defaults for wrong values.
func TestServeRefusesBadValues(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--root", ""}, "--root is empty"},
		{[]string{"--listen", ""}, "--listen is empty"},
		{[]string{"--listen", "2049"}, `--listen "2049"`},
		{[]string{"--portmap-listen", ""}, "--portmap-listen is empty"},
		{[]string{"--metrics-listen", "localhost"}, `--metrics-listen "localhost"`},
		{[]string{"--admin-listen", "unix:"}, `--admin-listen "unix:"`},
		{[]string{"--admin-listen", "unix:rel.sock"}, "absolute"},
		{[]string{"--max-conns-per-client", "0"}, "--max-conns-per-client 0: want at least 1"},
		{[]string{"--max-conns", "-1"}, "--max-conns -1: want 0"},
		{[]string{"--idle-timeout", "0s"}, "--idle-timeout 0s: want more than 0"},
		{[]string{"--portmap-listen", "127.0.0.1:111,nohost"}, "--portmap-listen \"nohost\""},
		{[]string{"--max-conns-per-client", "-1"}, "--max-conns-per-client -1"},
		{[]string{"--max-conns-per-client", "many"}, `invalid argument "many" for "--max-conns-per-client"`},
		{[]string{"--shutdown-timeout", "0s"}, "--shutdown-timeout"},
		{[]string{"--lock-grace", "-1s"}, "--lock-grace"},
		{[]string{"--log-format", "yaml"}, `--log-format "yaml": want text or json`},
		{[]string{"--log-level", "loud"}, `--log-level "loud"`},
	} {
		expect(t, 2, []string{c.want}, append([]string{"serve"}, c.args...)...)
	}
	expect(t, 2, []string{`-o "yaml": want table or json`}, "admin", "list", "-o", "yaml")

	// A typo in --root: nothing created, nothing served.
	typo := filepath.Join(t.TempDir(), "srv", "nfs-dta")
	expect(t, 1, []string{"--root " + typo + " does not exist", "--init"}, "serve", "--root", typo)
	if _, err := os.Stat(filepath.Dir(typo)); !os.IsNotExist(err) {
		t.Fatalf("a refused --root left %s behind: %v", filepath.Dir(typo), err)
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	expect(t, 1, []string{"not a directory"}, "serve", "--root", file)
	// --init makes a new tree (parents too) and serves it.
	p := startNFSD(t, typo, "--init")
	if _, err := os.Stat(filepath.Join(typo, "volumes", "default")); err != nil {
		t.Fatalf("--init served without making the tree: %v\n%s", err, p.logs)
	}
}

// Item 2: the build in `nfsd version`, the start-up log line and the
// rwxnfs_build_info metric, all the same.
func TestVersionEverywhere(t *testing.T) {
	_, out, _ := nfsdRun(t, "", "version")
	first, _, _ := strings.Cut(out, "\n")
	v := strings.TrimPrefix(first, "nfsd ")
	p := startNFSD(t, t.TempDir(), "--metrics-listen", "127.0.0.1:0")
	if p.serving.Version != v {
		t.Fatalf("start-up log line says version %q, nfsd version %q", p.serving.Version, v)
	}
	resp, err := http.Get("http://" + p.serving.Metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var line string
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, "rwxnfs_build_info{") {
			line = l
		}
	}
	if !strings.Contains(line, `goversion="go1.`) || !strings.Contains(line, `revision="`) || !strings.HasSuffix(line, "} 1") {
		t.Fatalf("rwxnfs_build_info: %q", line)
	}
	if !strings.Contains(out, "go: go1.") {
		t.Fatalf("nfsd version: %s", out)
	}
}

// Item 3: the admin API in two steps. --admin-listen on a socket whose
// directory does not exist, no token file: nfsd makes the directory,
// generates a 0600 token in its state dir and logs where; nfsd admin
// given only --root finds it (and with nothing, the default socket).
func TestAdminInTwoSteps(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "nfsd-data")
	sock := "unix:" + filepath.Join(dir, "run", "rwxnfs", "admin.sock")
	p := startNFSD(t, root, "--init", "--admin-listen", sock)
	token := filepath.Join(root, "state", "admin-token")
	fi, err := os.Stat(token)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("generated token: %v %v", fi, err)
	}
	if !strings.Contains(p.logs.String(), token) {
		t.Fatalf("the token's path is not logged:\n%s", p.logs)
	}
	tok, _ := os.ReadFile(token)
	code, out, errOut := nfsdRun(t, dir, "admin", "--addr", sock, "list")
	if code != 0 || !strings.Contains(out, "default") {
		t.Fatalf("nfsd admin list from the parent of the default root: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = nfsdRun(t, "/", "admin", "list", "--addr", sock, "--root", root, "-o", "json")
	if code != 0 || !strings.HasPrefix(out, "[") {
		t.Fatalf("nfsd admin list --root -o json (flags after the command): exit %d\n%s%s", code, out, errOut)
	}
	// A restart keeps the token.
	p.cmd.Process.Kill()
	<-p.done
	startNFSD(t, root, "--admin-listen", sock)
	if again, _ := os.ReadFile(token); !bytes.Equal(again, tok) {
		t.Fatal("a restart replaced the token")
	}
	// No token where the CLI looks: say how to get one.
	code, _, errOut = nfsdRun(t, t.TempDir(), "admin", "list", "--addr", sock)
	if code != 1 || !strings.Contains(errOut, "no admin token at nfsd-data/state/admin-token") || !strings.Contains(errOut, "--admin-listen") {
		t.Fatalf("no token: exit %d: %s", code, errOut)
	}
	// No server: say so.
	code, _, errOut = nfsdRun(t, dir, "admin", "list", "--root", root, "--addr", "unix:"+filepath.Join(dir, "nothing.sock"))
	if code != 1 || !strings.Contains(errOut, "is nfsd running with --admin-listen") {
		t.Fatalf("no server: exit %d: %s", code, errOut)
	}
}

// adminBinary starts nfsd with its admin API on a socket and returns a
// runner of the nfsd admin binary against it, checking the exit code.
func adminBinary(t *testing.T, extra ...string) (p *proc, root string, admin func(want int, args ...string) (stdout, stderr string)) {
	dir := t.TempDir()
	root = filepath.Join(dir, "root")
	sock := "unix:" + filepath.Join(dir, "admin.sock")
	p = startNFSD(t, root, append([]string{"--init", "--admin-listen", sock}, extra...)...)
	return p, root, func(want int, args ...string) (string, string) {
		t.Helper()
		code, o, e := nfsdRun(t, dir, append([]string{"admin", "--addr", sock, "--root", root}, args...)...)
		if code != want {
			t.Fatalf("nfsd admin %q: exit %d, want %d\nstdout: %s\nstderr: %s", args, code, want, o, e)
		}
		return o, e
	}
}

// Item 5: sizes as typed, "-" for no limit and 0 for zero, JSON numbers,
// expand 0 and --allow-shrink, the differing field named, delete of an
// unknown volume, mode= checks, new volumes reconciled.
func TestAdminOutput(t *testing.T) {
	_, _, admin := adminBinary(t)
	for _, c := range []struct{ typed, bytes string }{{"1.5Gi", "1610612736"}, {"10G", "10000000000"}, {"10GB", "10000000000"}, {"500mi", "524288000"}} {
		vol := "v" + strings.NewReplacer(".", "", "i", "").Replace(strings.ToLower(c.typed))
		out, _ := admin(0, "create", vol, c.typed)
		if !strings.Contains(out, "Capacity:     "+c.typed+" ("+c.bytes+" bytes)") {
			t.Errorf("create %s does not echo the size as typed:\n%s", c.typed, out)
		}
	}
	_, e := admin(2, "create", "bad", "10X")
	if !strings.Contains(e, `size "10X": unknown unit "X"`) {
		t.Errorf("bad size: %s", e)
	}
	// An empty volume: used is 0 (not "-"), reconciled (no "*"), no limit "-".
	admin(0, "create", "free", "-")
	out, _ := admin(0, "list")
	var row []string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "free" {
			row = f
		}
	}
	if len(row) < 6 || row[1] != "-" || row[2] != "0" || row[3] != "-" || row[5] != "-" {
		t.Errorf("list row of an empty volume with no limit: %q\n%s", row, out)
	}
	// JSON numbers are numbers.
	out, _ = admin(0, "show", "v15g", "-o", "json")
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatal(err)
	}
	if n, ok := v["capacityBytes"].(float64); !ok || n != 1610612736 {
		t.Errorf("capacityBytes in JSON: %#v", v["capacityBytes"])
	}
	if _, ok := v["usedBytes"].(float64); !ok || v["usageReconciled"] != true {
		t.Errorf("usedBytes %#v, usageReconciled %#v: want a number and true", v["usedBytes"], v["usageReconciled"])
	}
	// expand: up freely, down only with --allow-shrink, 0 removes the limit.
	admin(0, "expand", "v15g", "2Gi")
	_, e = admin(2, "expand", "v15g", "1Gi")
	if !strings.Contains(e, "--allow-shrink") {
		t.Errorf("shrink without --allow-shrink: %s", e)
	}
	out, _ = admin(0, "expand", "v15g", "1Gi", "--allow-shrink")
	if !strings.Contains(out, "Capacity:     1Gi (1073741824 bytes)") {
		t.Errorf("expand --allow-shrink:\n%s", out)
	}
	out, _ = admin(0, "expand", "v15g", "0")
	if !strings.Contains(out, "Capacity:     - (no limit)") {
		t.Errorf("expand 0:\n%s", out)
	}
	// A repeat with other parameters names the field, old and new value.
	admin(0, "create", "web", "1Gi", "uid=33", "mode=0750", "squash=root")
	_, e = admin(1, "create", "web", "1Gi", "uid=33", "mode=0770", "squash=all")
	if !strings.Contains(e, "mode 0750, not 0770") || !strings.Contains(e, "squash root, not all") {
		t.Errorf("create with other parameters: %s", e)
	}
	// Delete of an unknown volume says so, exit 0.
	if out, _ := admin(0, "delete", "nosuch"); !strings.Contains(out, "volume nosuch does not exist: nothing deleted") {
		t.Errorf("delete unknown: %s", out)
	}
	// mode=: beyond 07777 refused, setuid/sticky warned of.
	if _, e := admin(2, "create", "m", "1Gi", "mode=17777"); !strings.Contains(e, "up to 07777") {
		t.Errorf("mode=17777: %s", e)
	}
	if _, e := admin(0, "create", "shared", "1Gi", "mode=1777"); !strings.Contains(e, "warning: mode=1777 sets the sticky bit") {
		t.Errorf("mode=1777: %s", e)
	}
	if _, e := admin(0, "create", "suid", "1Gi", "mode=4755"); !strings.Contains(e, "warning: mode=4755 sets setuid") {
		t.Errorf("mode=4755: %s", e)
	}
}

// scrape returns nfsd's /metrics lines that start with prefix.
func scrape(t *testing.T, p *proc, prefix string) []string {
	t.Helper()
	resp, err := http.Get("http://" + p.serving.Metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out []string
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// Item 6: per-volume usage, limit and inode metrics, following volumes
// as they are created, written and deleted.
func TestVolumeMetrics(t *testing.T) {
	p, _, admin := adminBinary(t, "--metrics-listen", "127.0.0.1:0")
	admin(0, "create", "q", "1Gi", "inodeLimit=100")
	c := client(t, p.addr)
	ctx := context.Background()
	fh, err := c.Mount(ctx, "/volumes/q")
	if err != nil {
		t.Fatal(err)
	}
	f, _, err := c.Create(ctx, fh, "f", nfsclient.Guarded, nfsclient.SetAttr{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(ctx, f, 0, make([]byte, 1<<20), nfsclient.FileSync); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(scrape(t, p, "rwxnfs_volume_"), "\n")
	for _, want := range []string{
		`rwxnfs_volume_limit_bytes{volume="q"} 1.073741824e+09`,
		`rwxnfs_volume_used_bytes{volume="q"} 1.048576e+06`,
		`rwxnfs_volume_inode_limit{volume="q"} 100`,
		`rwxnfs_volume_used_inodes{volume="q"} 1`, // the root is not counted
		`rwxnfs_volume_used_bytes{volume="default"} 0`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("metrics lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, `rwxnfs_volume_limit_bytes{volume="default"}`) {
		t.Errorf("a volume with no limit has a limit sample:\n%s", got)
	}
	admin(0, "delete", "q")
	if got := strings.Join(scrape(t, p, "rwxnfs_volume_"), "\n"); strings.Contains(got, `volume="q"`) {
		t.Errorf("a deleted volume still has metrics:\n%s", got)
	}
}

// Item 6: nfsd admin clients lists the connected NFS clients with the
// volume they mounted and their calls.
func TestAdminClients(t *testing.T) {
	p, _, admin := adminBinary(t)
	if out, _ := admin(0, "clients"); strings.Count(out, "\n") != 1 {
		t.Fatalf("clients with none connected:\n%s", out)
	}
	c := client(t, p.addr)
	ctx := context.Background()
	fh, err := c.Mount(ctx, "/volumes/default")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := c.GetAttr(ctx, fh); err != nil {
			t.Fatal(err)
		}
	}
	out, _ := admin(0, "clients", "-o", "json")
	var cs []struct {
		Address string
		Since   time.Time
		Calls   int
		Volumes []string
	}
	if err := json.Unmarshal([]byte(out), &cs); err != nil || len(cs) != 1 {
		t.Fatalf("clients -o json: %v\n%s", err, out)
	}
	if !strings.HasPrefix(cs[0].Address, "127.0.0.1:") || cs[0].Calls < 4 || len(cs[0].Volumes) != 1 || cs[0].Volumes[0] != "default" || cs[0].Since.IsZero() {
		t.Fatalf("clients: %+v", cs[0])
	}
	if out, _ := admin(0, "clients"); !strings.Contains(out, "ADDRESS") || !strings.Contains(out, "default") {
		t.Fatalf("clients:\n%s", out)
	}
}

// Item 6: retained and archived volumes are listed and restorable, with
// their limits and data.
func TestAdminDeletedAndRestore(t *testing.T) {
	p, root, admin := adminBinary(t)
	admin(0, "create", "web", "1Gi", "uid=33", "mode=0750", "onDelete=retain")
	c := client(t, p.addr)
	ctx := context.Background()
	fh, err := c.Mount(ctx, "/volumes/web")
	if err != nil {
		t.Fatal(err)
	}
	c.SetCred(0, 0)
	f, _, err := c.Create(ctx, fh, "data", nfsclient.Guarded, nfsclient.SetAttr{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(ctx, f, 0, make([]byte, 4096), nfsclient.FileSync); err != nil {
		t.Fatal(err)
	}
	admin(0, "delete", "web")
	admin(0, "create", "logs", "2Gi")
	admin(0, "delete", "logs", "archive")
	out, _ := admin(0, "deleted")
	if !strings.Contains(out, "retained/web") || !strings.Contains(out, "archive/logs-") || !strings.Contains(out, "1.0Gi") || !strings.Contains(out, "2.0Gi") {
		t.Fatalf("deleted:\n%s", out)
	}
	var rs []struct{ Name, VolumeID string }
	out, _ = admin(0, "deleted", "-o", "json")
	if err := json.Unmarshal([]byte(out), &rs); err != nil || len(rs) != 2 {
		t.Fatalf("deleted -o json: %v\n%s", err, out)
	}
	// Restored as it was: limit, owner, mode, data, usage.
	out, _ = admin(0, "restore", "retained/web")
	if !strings.Contains(out, "Capacity:     1.0Gi") || !strings.Contains(out, "uid 33") || !strings.Contains(out, "mode 0750") || !strings.Contains(out, "4096 bytes") {
		t.Fatalf("restore retained/web:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(root, "volumes", "web", "data")); err != nil {
		t.Fatal(err)
	}
	// The old handle works again: same fsid.
	if _, err := c.GetAttr(ctx, f); err != nil {
		t.Fatalf("a handle from before the delete, after the restore: %v", err)
	}
	// Under another id; a taken id is refused.
	var logsName string
	for _, r := range rs {
		if r.VolumeID == "logs" {
			logsName = r.Name
		}
	}
	if _, e := admin(1, "restore", logsName, "web"); !strings.Contains(e, "volume web exists") {
		t.Fatalf("restore onto a taken id: %s", e)
	}
	admin(0, "restore", logsName, "logs-old")
	if out, _ := admin(0, "list"); !strings.Contains(out, "logs-old") {
		t.Fatalf("list after restore:\n%s", out)
	}
	if out, _ := admin(0, "copies"); strings.TrimSpace(out) != "MAKING  FROM  PROGRESS" {
		t.Fatalf("copies with none in progress:\n%s", out)
	}
	if out, _ := admin(0, "deleted"); strings.Count(out, "\n") != 1 {
		t.Fatalf("deleted after both were restored:\n%s", out)
	}
	if _, e := admin(1, "restore", "retained/nosuch"); !strings.Contains(e, "NotFound") {
		t.Fatalf("restore of nothing: %s", e)
	}
	if _, e := admin(1, "restore", "../volumes/web"); !strings.Contains(e, "InvalidArgument") {
		t.Fatalf("restore of a path outside: %s", e)
	}
}
