package e2e

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rwxnfs/rwxnfs/internal/sanityreport"
)

// The CSI driver on real kernels: csi-nfs inside a node VM (its binaries
// come through RWXNFS_E2E_NODE_BINS, which make e2e sets), serving both
// the node service (real NFS mounts by the VM's kernel) and the
// controller, which reaches the bed's nfsd through its admin API on TCP
// on the bridge, as a controller pod reaches nfsd's Service.

// csiAdminPort is nfsd's admin API port on the bridge in CSI beds.
const csiAdminPort = "9000"

// csiHostBin is the host's copy of a node binary given through the hook.
func csiHostBin(t *testing.T, name string) string {
	t.Helper()
	for _, p := range extraNodeBinaries() {
		if filepath.Base(p) == name {
			return p
		}
	}
	t.Skipf("e2e: %s is not among RWXNFS_E2E_NODE_BINS: run the CSI cases through make e2e / make e2e-smoke", name)
	return ""
}

// newCSIBed is a bed whose nfsd serves its admin API on the bridge.
func newCSIBed(t *testing.T, n int) *bed {
	t.Helper()
	csiHostBin(t, "csi-nfs")
	csiHostBin(t, "csicall")
	b := newBed(t, n)
	b.adminTCP = serverIP + ":" + csiAdminPort
	b.stopNFSD(syscall.SIGTERM)
	b.startNFSD()
	return b
}

// startPlugin runs csi-nfs --mode all on node n, on the usual socket,
// managing the bed's nfsd ("main") and any more --nfsd given.
func (b *bed) startPlugin(n *node, extra ...string) {
	b.t.Helper()
	token, err := os.ReadFile(b.adminToken())
	if err != nil {
		b.t.Fatal(err)
	}
	n.must(fmt.Sprintf(`mkdir -p /run/csi
printf '%%s' '%s' > /tmp/admin-token && chmod 400 /tmp/admin-token
(csi-nfs --mode all --endpoint unix:///run/csi/csi.sock --node-id %s --admin-token-file /tmp/admin-token \
  --nfsd name=main,admin=%s,server=%s %s >> /tmp/csi-node.log 2>&1 &)
for i in $(seq 1 100); do [ -S /run/csi/csi.sock ] && break; sleep 0.1; done
csicall probe`, strings.TrimSpace(string(token)), n.name, b.adminTCP, serverIP, strings.Join(extra, " ")), 60*time.Second)
}

// csiReply is one csicall outcome.
type csiReply struct {
	ok         bool
	code, text string // "OK" and the JSON response, or the gRPC code and message
	took       time.Duration
}

// csicall runs one CSI call on node n, to its csi-nfs.
func (n *node) csicall(timeout time.Duration, args ...string) csiReply {
	n.b.t.Helper()
	t0 := time.Now()
	out, _, err := n.sh("csicall "+strings.Join(args, " "), timeout)
	r := csiReply{took: time.Since(t0)}
	if err != nil {
		n.b.t.Fatalf("%s: csicall %v: %v", n.name, args, err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := lines[len(lines)-1]
	switch {
	case strings.HasPrefix(last, "OK "):
		r.ok, r.code, r.text = true, "OK", strings.TrimPrefix(last, "OK ")
	case strings.HasPrefix(last, "ERROR "):
		r.code, r.text, _ = strings.Cut(strings.TrimPrefix(last, "ERROR "), ": ")
	default:
		n.b.t.Fatalf("%s: csicall %v: unexpected output %q", n.name, args, out)
	}
	return r
}

// createVolume makes a volume through the driver on node n and returns
// its ID and volume context as csicall's --context value.
func (b *bed) createVolume(n *node, name, params string) (id, vctx string) {
	b.t.Helper()
	args := []string{"create", "--name=" + name, "--size=67108864"}
	if params != "" {
		args = append(args, "--params="+params)
	}
	r := n.csicall(2*time.Minute, args...)
	if !r.ok {
		b.t.Fatalf("CreateVolume %s: %s: %s", name, r.code, r.text)
	}
	id = jsonField(r.text, "volumeId")
	vctx = fmt.Sprintf("server=%s,share=%s", jsonField(r.text, "server"), jsonField(r.text, "share"))
	if id == "" || !strings.Contains(vctx, "/volumes/") {
		b.t.Fatalf("CreateVolume %s: %s", name, r.text)
	}
	return id, vctx
}

// jsonField pulls "key":"value" out of csicall's one-line JSON.
func jsonField(js, key string) string {
	_, rest, ok := strings.Cut(js, `"`+key+`":"`)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, `"`)
	return v
}

func publishArgs(id, vctx, target string, more ...string) []string {
	return append([]string{"publish", "--volume=" + id, "--context=" + vctx, "--target=" + target}, more...)
}

// TestCSISanityNode runs csi-sanity inside a node VM against csi-nfs
// there: every spec, node (real NFS mounts by the VM's kernel) and
// controller (through nfsd's admin API), with nothing skipped by us
// (RWXNFS_E2E_CSI_FOCUS narrows it for make e2e-smoke).
func TestCSISanityNode(t *testing.T) {
	csiHostBin(t, "csi-sanity")
	b := newCSIBed(t, 1)
	n := b.nodes[0]
	b.startPlugin(n)
	focus := os.Getenv("RWXNFS_E2E_CSI_FOCUS")
	focusArg := ""
	if focus != "" {
		focusArg = fmt.Sprintf("'--ginkgo.focus=%s'", focus)
	}
	t0 := time.Now()
	script := fmt.Sprintf(`cat > /tmp/params.yaml <<'EOF'
onDelete: "delete"
"csi.storage.k8s.io/pvc/name": "sanity"
"csi.storage.k8s.io/pvc/namespace": "default"
EOF
cat > /tmp/mutable.yaml <<'EOF'
inodeLimit: "100000"
EOF
csi-sanity --csi.endpoint=unix:///run/csi/csi.sock \
  --csi.mountdir=/tmp/csi-target --csi.stagingdir=/tmp/csi-staging \
  --csi.testvolumesize=67108864 --csi.testvolumeexpandsize=134217728 \
  --csi.testvolumeparameters=/tmp/params.yaml --csi.testvolumemutableparameters=/tmp/mutable.yaml \
  --ginkgo.junit-report=/tmp/junit.xml --ginkgo.no-color %s > /tmp/sanity.log 2>&1
echo "@@SANITY rc=$?"
echo "@@JUNIT $(base64 -w0 /tmp/junit.xml)"
tail -n 60 /tmp/sanity.log`, focusArg)
	out, _, err := n.sh(script, 25*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var rc, junit string
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 8<<20)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "@@SANITY rc="); ok {
			rc = v
		}
		if v, ok := strings.CutPrefix(line, "@@JUNIT "); ok {
			junit = v
		}
	}
	data, derr := base64.StdEncoding.DecodeString(junit)
	res, perr := sanityreport.Parse(data)
	if derr != nil || perr != nil {
		t.Fatalf("csi-sanity rc=%s; no report (%v %v):\n%s", rc, derr, perr, out)
	}
	os.WriteFile(filepath.Join(b.logDir, "csi-sanity-junit.xml"), data, 0o644)
	t.Logf("csi-sanity in the node (focus %q): %d specs passed, %d failed, %d skipped by csi-sanity itself, %d outside the focus, in %v",
		focus, res.Passed, res.Failed, len(res.Skipped), res.NotRun, time.Since(t0).Round(time.Second))
	logf("BENCH csi-sanity node: %d passed %d failed %d skipped in %v", res.Passed, res.Failed, len(res.Skipped), time.Since(t0).Round(time.Second))
	for _, s := range res.Skipped {
		t.Logf("  skipped: %s", s)
	}
	for _, f := range res.Failures {
		t.Errorf("FAILED: %s", f)
	}
	if rc != "0" || res.Failed > 0 || res.Passed == 0 {
		node, _, _ := n.sh("tail -n 80 /tmp/csi-node.log", time.Minute)
		t.Fatalf("csi-sanity rc=%s\n%s\nnode plugin log:\n%s", rc, out, node)
	}
	// The node specs really mounted: the VM's kernel did NFS mounts.
	mounts := strings.TrimSpace(n.must(`grep -c 'msg=mounted' /tmp/csi-node.log || true`, time.Minute))
	t.Logf("NFS mounts made by the node plugin during the run: %s", mounts)
	if mounts == "0" || mounts == "" {
		t.Fatalf("csi-sanity made no NFS mount")
	}
}

// want checks a call's outcome: its gRPC code and words its message
// must hold, and logs the message, which is what a user reads in
// "kubectl describe pod".
func want(t *testing.T, what string, r csiReply, code string, words ...string) {
	t.Helper()
	t.Logf("%s -> %s in %v: %s", what, r.code, r.took.Round(10*time.Millisecond), r.text)
	if r.code != code {
		t.Errorf("%s: got %s, want %s", what, r.code, code)
	}
	for _, w := range words {
		if !strings.Contains(r.text, w) {
			t.Errorf("%s: the message does not say %q", what, w)
		}
	}
}

// TestCSINodeChecks breaks, one at a time, each thing a mount needs and
// reads the error a NodePublishVolume caller gets: the mount.nfs helper,
// the kernel's NFS client, rpc.statd, the server, and the allow-list.
func TestCSINodeChecks(t *testing.T) {
	b := newCSIBed(t, 1)
	n := b.nodes[0]
	b.startPlugin(n)
	good, gctx := b.createVolume(n, "good", "")
	refused, rctx := b.createVolume(n, "refused", "allowedClients=10.78.0.99")
	pub := func(id, vctx, target string, more ...string) csiReply {
		return n.csicall(3*time.Minute, publishArgs(id, vctx, target, more...)...)
	}
	unpub := func(id, target string) {
		t.Helper()
		if r := n.csicall(time.Minute, "unpublish", "--volume="+id, "--target="+target); !r.ok {
			t.Fatalf("unpublish %s: %s: %s", target, r.code, r.text)
		}
	}

	// Everything in place: it mounts, and data reaches the server.
	want(t, "publish with everything in place", pub(good, gctx, "/tmp/t/good"), "OK")
	n.must("echo checked > /tmp/t/good/f && sync && grep -q ' /tmp/t/good nfs .*vers=3' /proc/mounts", 30*time.Second)
	if data, err := os.ReadFile(filepath.Join(b.volPath("good"), "f")); err != nil || string(data) != "checked\n" {
		t.Fatalf("the server has %q, %v", data, err)
	}
	unpub(good, "/tmp/t/good")

	// Read-only is honoured; the same target asked for read-write is
	// "mounted differently", and the same request again is fine.
	want(t, "publish read-only", pub(good, gctx, "/tmp/t/ro", "--readonly"), "OK")
	out, _, _ := n.sh("echo x > /tmp/t/ro/g 2>&1; echo rc=$?", 30*time.Second)
	if !strings.Contains(out, "Read-only file system") {
		t.Errorf("writing to a read-only publish: %q", out)
	}
	want(t, "publish read-only again", pub(good, gctx, "/tmp/t/ro", "--readonly"), "OK")
	want(t, "publish read-write where it is mounted read-only", pub(good, gctx, "/tmp/t/ro"), "AlreadyExists", "read-only", "unpublish it first")
	unpub(good, "/tmp/t/ro")
	unpub(good, "/tmp/t/ro") // idempotent

	// No mount.nfs.
	n.must("mv /sbin/mount.nfs /sbin/mount.nfs.off", 10*time.Second)
	want(t, "publish without mount.nfs", pub(good, gctx, "/tmp/t/good"), "FailedPrecondition", "mount.nfs helper is not installed", "nfs-common", "nfs-utils")
	n.must("mv /sbin/mount.nfs.off /sbin/mount.nfs", 10*time.Second)

	// A kernel without its NFS client: unload it (nothing is mounted).
	n.must("rmmod nfsv3 && rmmod nfs && ! grep -qw nfs /proc/filesystems", 30*time.Second)
	want(t, "publish without the kernel's NFS client", pub(good, gctx, "/tmp/t/good"), "FailedPrecondition", "kernel has no NFS client", "modprobe nfs", "CONFIG_NFS_FS")
	n.must(`for m in $(grep -E '/(nfs|nfsv3)\.ko' /etc/modules.list); do insmod /lib/modules/$(uname -r)/$m; done; grep -qw nfs /proc/filesystems`, 30*time.Second)

	// rpc.statd stopped: locking cannot work; nolock, knowingly, mounts.
	n.must("kill $(pidof rpc.statd); sleep 0.5; ! pidof rpc.statd", 10*time.Second)
	want(t, "publish without rpc.statd", pub(good, gctx, "/tmp/t/good"), "FailedPrecondition", "rpc.statd is not running", "nolock")
	want(t, "publish without rpc.statd, with nolock", pub(good, gctx, "/tmp/t/nolock", "--flags=nolock"), "OK")
	unpub(good, "/tmp/t/nolock")
	n.must("rpc.statd --no-notify", 10*time.Second)

	// The allow-list leaves this node out.
	want(t, "publish of a volume that does not allow this node", pub(refused, rctx, "/tmp/t/refused"), "FailedPrecondition",
		"allowedClients does not include this node's address "+nodeIP(0))

	// nfsd stopped: a clear UNAVAILABLE, quickly, not a two-minute hang.
	b.stopNFSD(syscall.SIGTERM)
	r := pub(good, gctx, "/tmp/t/good")
	want(t, "publish with nfsd stopped", r, "Unavailable", "does not answer", serverIP)
	if r.took > 30*time.Second {
		t.Errorf("with nfsd stopped the publish took %v", r.took)
	}
	b.startNFSD()
	want(t, "publish after nfsd is back", pub(good, gctx, "/tmp/t/good"), "OK")

	// The volume deleted on the server under a mount: stats say stale.
	if out, err := b.admin("delete", "good"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want(t, "stats of a volume deleted under its mount", n.csicall(time.Minute, "stats", "--volume="+good, "--target=/tmp/t/good"),
		"OK", `"abnormal":true`, "stale")
	unpub(good, "/tmp/t/good")
}

// secondNFSD runs another nfsd in the netns on its own address (added to
// the bridge), with its admin API on TCP there; stop it with the returned
// process (SIGSTOP makes it hang without closing anything).
func (b *bed) secondNFSD(ip string) *os.Process {
	b.t.Helper()
	if _, err := run("ip", "-n", netns, "addr", "add", ip+"/24", "dev", bridge); err != nil {
		b.t.Fatal(err)
	}
	logPath := filepath.Join(b.logDir, "nfsd-second.log")
	lf, err := os.Create(logPath)
	if err != nil {
		b.t.Fatal(err)
	}
	cmd := inNetns(b.art.nfsd, "serve", "--init", "--root", filepath.Join(b.dir, "root-second"), "--listen", ip+":2049", "--portmap-listen", ip+":111",
		"--metrics-listen", "off", "--log-level", "debug", "--no-default-volume",
		"--admin-listen", ip+":"+csiAdminPort, "--admin-token-file", b.adminToken())
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); lf.Close(); close(done) }()
	b.t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGCONT)
		cmd.Process.Kill()
		<-done
	})
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if data, _ := os.ReadFile(logPath); strings.Contains(string(data), "nfsd serving") {
			return cmd.Process
		}
		select {
		case <-done:
			b.t.Fatalf("second nfsd exited; see %s", logPath)
		default:
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("second nfsd not serving after 60s; see %s", logPath)
		}
	}
}

// concurrently runs csicall invocations at once on node n (the console
// runs one script at a time, so they share one) and returns each outcome
// with its own duration. An argument list may start with a "delay=N"
// (seconds before the call).
func (n *node) concurrently(timeout time.Duration, calls ...[]string) []csiReply {
	n.b.t.Helper()
	var sb strings.Builder
	sb.WriteString("up() { cut -d' ' -f1 /proc/uptime; }\n")
	for i, c := range calls {
		delay := "0"
		if d, ok := strings.CutPrefix(c[0], "delay="); ok {
			delay, c = d, c[1:]
		}
		fmt.Fprintf(&sb, "( sleep %s; s=$(up); o=$(csicall %s 2>&1 | tail -n 1); e=$(up); echo \"$s $e $o\" > /tmp/call.%d ) &\n", delay, strings.Join(c, " "), i)
	}
	sb.WriteString("wait\n")
	for i := range calls {
		fmt.Fprintf(&sb, "echo \"@@CALL %d $(cat /tmp/call.%d)\"\n", i, i)
	}
	out := n.must(sb.String(), timeout)
	replies := make([]csiReply, len(calls))
	for _, line := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(line, "@@CALL ")
		if !ok {
			continue
		}
		var i int
		var s, e float64
		if _, err := fmt.Sscanf(rest, "%d %f %f", &i, &s, &e); err != nil || i >= len(calls) {
			n.b.t.Fatalf("bad call line %q", line)
		}
		f := strings.SplitN(rest, " ", 4)
		r := csiReply{took: time.Duration((e - s) * float64(time.Second))}
		if len(f) == 4 {
			switch o := f[3]; {
			case strings.HasPrefix(o, "OK "):
				r.ok, r.code, r.text = true, "OK", strings.TrimPrefix(o, "OK ")
			case strings.HasPrefix(o, "ERROR "):
				r.code, r.text, _ = strings.Cut(strings.TrimPrefix(o, "ERROR "), ": ")
			default:
				r.code, r.text = "?", o
			}
		}
		replies[i] = r
	}
	return replies
}

// TestCSIHungMount: a mount that hangs is abandoned after --mount-timeout
// without holding up calls on other volumes; and with a volume's nfsd hung
// (SIGSTOP: connections stay open, nothing answers), publishing a volume
// on a live nfsd still succeeds in bounded time while, at the same time,
// the dead volume's stats say abnormal, a new publish on the dead server
// says UNAVAILABLE, and its unpublish returns.
func TestCSIHungMount(t *testing.T) {
	b := newCSIBed(t, 1)
	n := b.nodes[0]
	const second = "10.78.0.3"
	stuck := b.secondNFSD(second)
	b.startPlugin(n, "--nfsd", "name=second,admin="+second+":"+csiAdminPort+",server="+second, "--mount-timeout", "15s")
	live1, lctx1 := b.createVolume(n, "live1", "nfsd=main")
	live2, lctx2 := b.createVolume(n, "live2", "nfsd=main")
	dead1, dctx1 := b.createVolume(n, "dead1", "nfsd=second")
	dead2, dctx2 := b.createVolume(n, "dead2", "nfsd=second")
	if !strings.HasPrefix(dead1, "second/") || !strings.Contains(dctx1, "server="+second) {
		t.Fatalf("volume on the second nfsd: %s %s", dead1, dctx1)
	}

	// 1. A mount that hangs after the checks passed: mount.nfs blocks
	// reading its configuration, a FIFO with no writer. The call gives up
	// at the mount timeout; meanwhile calls on other volumes answer at
	// once; the target stays busy (Aborted) until the abandoned mount
	// ends, and then it is simply mounted.
	if r := n.csicall(time.Minute, publishArgs(live2, lctx2, "/tmp/t/live2")...); !r.ok {
		t.Fatalf("publish: %s %s", r.code, r.text)
	}
	n.must("rm -f /etc/nfsmount.conf && mkfifo /etc/nfsmount.conf", 10*time.Second)
	rs := n.concurrently(3*time.Minute,
		publishArgs(live1, lctx1, "/tmp/t/hang"),
		append([]string{"delay=3"}, publishArgs(live2, lctx2, "/tmp/t/live2")...),
		[]string{"delay=3", "stats", "--volume=" + live2, "--target=/tmp/t/live2"},
	)
	want(t, "a publish whose mount hangs", rs[0], "DeadlineExceeded", "did not finish in 15s", "abandoned")
	if rs[0].took > 40*time.Second {
		t.Errorf("the hanging publish returned after %v", rs[0].took)
	}
	want(t, "a repeated publish of another volume while a mount hangs", rs[1], "OK")
	want(t, "stats of another volume while a mount hangs", rs[2], "OK", `"unit":"BYTES"`)
	for _, r := range rs[1:] {
		if r.took > 10*time.Second {
			t.Errorf("a call on another volume took %v while a mount hung", r.took)
		}
	}
	want(t, "a retry while the abandoned mount still runs", n.csicall(time.Minute, publishArgs(live1, lctx1, "/tmp/t/hang")...), "Aborted", "has not finished")
	// Let the abandoned mount go on: it mounts, and a retry finds it. The
	// write runs in a subshell: if mount.nfs closes the FIFO before the
	// write lands, SIGPIPE ends the subshell, not the script (rc 141 seen).
	n.must("(echo > /etc/nfsmount.conf) 2>/dev/null || true; rm -f /etc/nfsmount.conf; for i in $(seq 1 100); do grep -q ' /tmp/t/hang ' /proc/mounts && break; sleep 0.2; done", time.Minute)
	want(t, "a retry after the abandoned mount finished", n.csicall(time.Minute, publishArgs(live1, lctx1, "/tmp/t/hang")...), "OK")
	if r := n.csicall(time.Minute, "unpublish", "--volume="+live1, "--target=/tmp/t/hang"); !r.ok {
		t.Fatalf("unpublish: %s %s", r.code, r.text)
	}

	// 2. A dead server with a volume mounted.
	if r := n.csicall(time.Minute, publishArgs(dead1, dctx1, "/tmp/t/dead1")...); !r.ok {
		t.Fatalf("publish on the second nfsd: %s %s", r.code, r.text)
	}
	n.must("echo before > /tmp/t/dead1/f && sync", 30*time.Second)
	if err := stuck.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// Something on the node is now stuck in the dead mount, as a pod would be.
	n.must("(echo after > /tmp/t/dead1/g &) ; sleep 1", 30*time.Second)
	rs = n.concurrently(4*time.Minute,
		publishArgs(live1, lctx1, "/tmp/t/live1"),
		publishArgs(dead2, dctx2, "/tmp/t/dead2"),
		[]string{"stats", "--volume=" + dead1, "--target=/tmp/t/dead1"},
		[]string{"unpublish", "--volume=" + dead1, "--target=/tmp/t/dead1"},
	)
	want(t, "publish on the live nfsd while the other hangs", rs[0], "OK")
	want(t, "publish on the hung nfsd", rs[1], "Unavailable", second, "does not answer")
	want(t, "stats of the hung volume", rs[2], "OK", `"abnormal":true`, "does not answer")
	want(t, "unpublish of the hung volume", rs[3], "OK")
	for i, bound := range []time.Duration{30 * time.Second, 30 * time.Second, 20 * time.Second, 90 * time.Second} {
		if rs[i].took > bound {
			t.Errorf("call %d took %v (bound %v)", i, rs[i].took, bound)
		}
	}
	out := n.must("grep ' /tmp/t/' /proc/mounts; ls /tmp/t", 30*time.Second)
	if strings.Contains(out, "/tmp/t/dead1 ") || strings.Contains(out, "dead1\n") {
		t.Errorf("the dead volume is still mounted or its target left:\n%s", out)
	}
	if !strings.Contains(out, "/tmp/t/live1 ") {
		t.Errorf("the live volume is not mounted:\n%s", out)
	}
	n.must("echo still-works > /tmp/t/live1/f && sync", 30*time.Second)
	if data, err := os.ReadFile(filepath.Join(b.volPath("live1"), "f")); err != nil || string(data) != "still-works\n" {
		t.Fatalf("the live volume's write: %q %v", data, err)
	}
	stuck.Signal(syscall.SIGCONT)
}
