package loadgen

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rwxnfs/rwxnfs/pkg/nfsd"
)

func tinyConfig(backing string) Config {
	return Config{Label: "rwxnfs", Conns: 2, InFlight: 4, Duration: 200 * time.Millisecond,
		SeqSize: 8 << 20, IOSize: 1 << 20, Files: 64, MetaClients: 8, DirEntries: 300,
		OneFiles: 20, OneDirEntries: 150, Backing: backing, Timeout: time.Minute}
}

func startNfsd(t *testing.T) (*nfsd.Daemon, string) {
	t.Helper()
	root := t.TempDir()
	d, err := nfsd.Start(nfsd.Config{Root: root, Listen: "127.0.0.1:0", PortmapListen: "127.0.0.1:0",
		MetricsListen: "127.0.0.1:0", DefaultVolume: "default", Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Shutdown(context.Background()) })
	return d, filepath.Join(root, "volumes", "default")
}

func key(r Result) string { return r.Workload + "/" + r.Mode + "/" + r.Client }

// Every workload against a real nfsd, with ports from its portmapper:
// no errors, every workload reports figures in every round, and the
// one-call workloads make exactly the calls they are said to make, as
// the server counted them.
func TestRunAgainstNfsd(t *testing.T) {
	for _, backing := range []bool{false, true} {
		d, dir := startNfsd(t)
		pm := d.PortmapAddr().(*net.TCPAddr)
		tg := Target{Host: "127.0.0.1", Portmap: pm.Port, Export: "/volumes/default"}
		b := ""
		if backing {
			b = dir
		}
		got := map[string][]Result{}
		cfg := tinyConfig(b)
		cfg.Metrics, cfg.PID = d.MetricsAddr().String(), os.Getpid()
		if backing {
			cfg.Rounds = 2 // every workload repeated on the same mount
		}
		err := Run(context.Background(), tg, cfg, func(r Result) { got[key(r)] = append(got[key(r)], r) })
		if err != nil {
			t.Fatalf("backing=%v: %v (results %+v)", backing, err, got)
		}
		var want []string
		for _, w := range []string{"null", "seqwrite", "seqread", "randread", "randwrite", "meta", "readdir", "lock", "lock-null"} {
			want = append(want, w+"//")
		}
		for _, w := range MetaPhases {
			want = append(want, w+"//", w+"/one/")
		}
		want = append(want, "readdir/one/", "null/one/")
		for _, k := range want {
			rs := got[k]
			if len(rs) != max(cfg.Rounds, 1) {
				t.Errorf("backing=%v: %s: %d results, want one per round: %+v", backing, k, len(rs), rs)
			}
			for i, r := range rs {
				if r.Error != "" || r.Ops == 0 || r.OpsPerS <= 0 || r.Round != i+1 || r.Server != "rwxnfs" {
					t.Errorf("backing=%v: %s: %+v", backing, k, r)
				}
			}
		}
		if len(got["stat/one/"]) == 0 || len(got["seqwrite//"]) == 0 {
			continue
		}
		if got["seqwrite//"][0].Bytes != 8<<20 || got["seqread//"][0].Bytes != 8<<20 {
			t.Errorf("sequential bytes: wrote %d read %d", got["seqwrite//"][0].Bytes, got["seqread//"][0].Bytes)
		}
		for k, want := range map[string]map[string]float64{
			"create/one/": {"Create": 1, "Write": 1},
			"stat/one/":   {"Lookup": 3},
			"getattr//":   {"GetAttr": 1},
			"rename/one/": {"Rename": 1},
			"rmdir/one/":  {"Rmdir": 1},
		} {
			if r := got[k][0]; !reflect.DeepEqual(r.RPCs, want) {
				t.Errorf("%s: server counted %v per operation, want %v", k, r.RPCs, want)
			}
		}
		if r := got["readdir/one/"][0]; r.RPCs["ReadDirPlus"] < 1 || r.ServerCPU <= 0 || r.ClientCPU <= 0 {
			t.Errorf("one-call readdir: %v calls per listing, server %v CPU-s, client %v CPU-s", r.RPCs, r.ServerCPU, r.ClientCPU)
		}
	}
}

// A listing that holds a name it should not fails both clients' checks.
func TestListingChecksCatchStrayEntries(t *testing.T) {
	d, dir := startNfsd(t)
	cfg := tinyConfig(dir)
	cfg.Libnfs, cfg.NoLock = libnfsOnecall(t), true
	s, err := Open(context.Background(), Target{Host: "127.0.0.1", NFSPort: d.Port(), MountPort: d.Port(), Export: "/volumes/default"}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b := s.(*bench)
	if _, err := b.oneReaddir(context.Background()); err != nil {
		t.Fatalf("clean directory: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, b.name, b.oneList, "stray"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := b.oneReaddir(context.Background()); err == nil || !strings.Contains(err.Error(), "stray") {
		t.Errorf("nfsbench listed a stray entry without complaint: %v", err)
	}
	r, err := b.runLibnfs(context.Background(), "readdir", "/"+b.name+"/"+b.oneList, cfg.OneDirEntries)
	if err == nil || !strings.Contains(err.Error(), "stray") {
		t.Errorf("libnfs-onecall listed a stray entry without complaint: %+v %v", r, err)
	}
}

// libnfsOnecall builds bench/libnfs-onecall.c; `make test` installs a C
// compiler and libnfs-dev, so there a missing one fails the test.
func libnfsOnecall(t *testing.T) string {
	t.Helper()
	cc, err := exec.LookPath("cc")
	if err == nil {
		_, err = os.Stat("/usr/include/nfsc/libnfs.h")
	}
	if err != nil {
		if os.Getenv("RWXNFS_STRICT") != "" {
			t.Fatalf("no C compiler or libnfs-dev (make deps installs them): %v", err)
		}
		t.Skipf("no C compiler or libnfs-dev: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "libnfs-onecall")
	out, err := exec.Command(cc, "-O2", "-Wall", "-Werror", "-o", bin, "../../bench/libnfs-onecall.c", "-lnfs").CombinedOutput()
	if err != nil {
		t.Fatalf("building libnfs-onecall: %v\n%s", err, out)
	}
	return bin
}

// The one-call workloads through libnfs against a real nfsd: every phase
// has figures, and what rwxnfs counted shows libnfs walking each path.
func TestLibnfsAgainstNfsd(t *testing.T) {
	d, dir := startNfsd(t)
	cfg := tinyConfig(dir)
	cfg.Libnfs = libnfsOnecall(t)
	cfg.Metrics = d.MetricsAddr().String()
	cfg.Only = map[string]bool{"libnfs": true}
	got := map[string]Result{}
	tg := Target{Host: "127.0.0.1", NFSPort: d.Port(), MountPort: d.Port(), Export: "/volumes/default"}
	if err := Run(context.Background(), tg, cfg, func(r Result) { got[r.Workload] = r }); err != nil {
		t.Fatalf("%v (results %+v)", err, got)
	}
	for _, w := range append(append([]string{}, MetaPhases...), "readdir") {
		r := got[w]
		if r.Error != "" || r.Ops == 0 || r.OpsPerS <= 0 || r.Mode != ModeOne || r.Client != ClientLibnfs || r.P50us <= 0 {
			t.Errorf("%s: %+v", w, r)
		}
	}
	// The path is /nfsbench-N/libnfsM/fNNNNNNN: three LOOKUPs, then the call.
	for w, want := range map[string]map[string]float64{
		"stat":    {"Lookup": 3, "GetAttr": 1},
		"getattr": {"GetAttr": 1},
		"setattr": {"Lookup": 3, "SetAttr": 1},
		"remove":  {"Lookup": 2, "Remove": 1},
	} {
		if !reflect.DeepEqual(got[w].RPCs, want) {
			t.Errorf("%s: server counted %v per operation, want %v", w, got[w].RPCs, want)
		}
	}
}

// The check the read workloads rely on catches misplaced and altered data.
func TestCheckCatchesBadData(t *testing.T) {
	buf, want := make([]byte, 3*blk), make([]byte, 3*blk)
	fill(buf, 8*blk)
	if err := check(buf, 8*blk, want); err != nil {
		t.Fatal(err)
	}
	if err := check(buf, 9*blk, want); err == nil {
		t.Error("data read from the wrong offset passed")
	}
	buf[blk+100] ^= 1
	if err := check(buf, 8*blk, want); err == nil || !strings.Contains(err.Error(), "offset") {
		t.Errorf("a flipped bit passed: %v", err)
	}
}

// A server that answers with an error status fails the run loudly.
func TestRunFailsOnNFSError(t *testing.T) {
	root := t.TempDir()
	d, err := nfsd.Start(nfsd.Config{Root: root, Listen: "127.0.0.1:0", DefaultVolume: "default",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown(context.Background())
	p := d.Port()
	tg := Target{Host: "127.0.0.1", NFSPort: p, MountPort: p, Export: "/volumes/nosuch"}
	if err := Run(context.Background(), tg, tinyConfig(""), func(Result) {}); err == nil {
		t.Fatal("MOUNT of a missing export succeeded")
	}
}

func TestLimits(t *testing.T) {
	cfg := tinyConfig("")
	cfg.SeqSize = 4 << 20
	d, err := OpenDirect(t.TempDir(), cfg, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var got []Result
	if err := Interleave(context.Background(), []Stepper{d}, cfg, func(r Result) { got = append(got, r) }); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"null": true, "seqwrite": true, "seqread": true, "randread": true, "randwrite": true, "one:null": true}
	for _, r := range got {
		k := r.Workload
		if r.Mode != "" {
			k = r.Mode + ":" + k
		}
		if !want[k] || r.Ops == 0 || r.Server != "limit" {
			t.Errorf("unexpected %+v", r)
		}
		delete(want, k)
	}
	if len(want) > 0 {
		t.Errorf("missing %v", want)
	}
}

// The hook runs at the start and end of every measured phase, in order,
// named as the profiling script expects.
func TestHookBracketsEveryPhase(t *testing.T) {
	d, dir := startNfsd(t)
	log := filepath.Join(t.TempDir(), "events")
	hook := filepath.Join(t.TempDir(), "hook")
	if err := os.WriteFile(hook, []byte("#!/bin/sh\necho \"$1 $2 $3\" >> "+log+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := tinyConfig(dir)
	cfg.Hook = hook
	cfg.Only = map[string]bool{"null": true, "one-meta": true, "one-readdir": true}
	tg := Target{Host: "127.0.0.1", NFSPort: d.Port(), MountPort: d.Port(), Export: "/volumes/default"}
	if err := Run(context.Background(), tg, cfg, func(Result) {}); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, w := range append([]string{"null", "one-null"}, append(prefixed("one-", MetaPhases), "one-readdir")...) {
		want = append(want, "start rwxnfs "+w, "end rwxnfs "+w)
	}
	b, _ := os.ReadFile(log)
	if got := strings.Fields(strings.ReplaceAll(string(b), " ", "_")); strings.Join(got, "\n") != strings.ReplaceAll(strings.Join(want, "\n"), " ", "_") {
		t.Errorf("hook events:\n%s\nwant:\n%s", b, strings.Join(want, "\n"))
	}
}

func prefixed(p string, ws []string) []string {
	var out []string
	for _, w := range ws {
		out = append(out, p+w)
	}
	return out
}

// Every probe case runs on a real directory and reports figures.
func TestSyncProbe(t *testing.T) {
	rs, err := SyncProbe(context.Background(), t.TempDir(), 40, 4)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rs {
		if r.Ops != 40 || r.OpsPerS <= 0 {
			t.Errorf("%+v", r)
		}
		got = append(got, r.Mode+":"+r.Workload)
	}
	want := "one:none one:dir-fsync one:log-dsync one:log-fdatasync :dir-fsync :group-commit :log-dsync"
	if strings.Join(got, " ") != want {
		t.Errorf("cases %v, want %s", got, want)
	}
}

// A group-commit waiter returns only after an fsync that began after it
// asked: one already running when it came may not cover its change.
func TestGroupCommitCoversEveryWaiter(t *testing.T) {
	var mu sync.Mutex
	started, finished := 0, 0
	g := newGroupCommit(func() error {
		mu.Lock()
		started++
		n := started
		mu.Unlock()
		time.Sleep(2 * time.Millisecond)
		mu.Lock()
		finished = n
		mu.Unlock()
		return nil
	})
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				mu.Lock()
				before := started
				mu.Unlock()
				if err := g.wait(); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				ok := finished > before
				mu.Unlock()
				if !ok {
					t.Errorf("returned after fsync %d, but %d had started before it asked", finished, before)
					return
				}
			}
		}()
	}
	wg.Wait()
	if g.fsyncs() >= 16*20 {
		t.Errorf("%d fsyncs for %d waiters: nothing was grouped", g.fsyncs(), 16*20)
	}
}

// When a phase that only reads or sets attributes fails, the phases after
// it still run and report figures, and the run still fails. A hook
// replaces one file behind the server's back (same name, new inode) as
// the one-call getattr phase starts, so its handle goes stale.
func TestAttributeFailuresDoNotStopThePass(t *testing.T) {
	d, dir := startNfsd(t)
	hook := filepath.Join(t.TempDir(), "hook")
	script := "#!/bin/sh\n[ \"$1 $3\" = \"start one-getattr\" ] || exit 0\n" +
		"f=$(ls -d " + dir + "/nfsbench-*/one*-client0)/f0000003\nrm \"$f\" && : > \"$f\"\n"
	if err := os.WriteFile(hook, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := tinyConfig(dir)
	cfg.Hook = hook
	cfg.Only = map[string]bool{"one-meta": true}
	got := map[string]Result{}
	tg := Target{Host: "127.0.0.1", NFSPort: d.Port(), MountPort: d.Port(), Export: "/volumes/default"}
	err := Run(context.Background(), tg, cfg, func(r Result) { got[r.Workload] = r })
	if err == nil {
		t.Error("the run succeeded with a stale handle")
	}
	for _, w := range []string{"getattr", "setattr"} {
		if !strings.Contains(got[w].Error, "NFS3ERR_STALE") {
			t.Errorf("%s: %+v, want a stale-handle error", w, got[w])
		}
	}
	for _, w := range []string{"null", "create", "stat", "rename", "remove", "mkdir", "rmdir"} {
		if r := got[w]; r.Error != "" || r.Ops != int64(cfg.OneFiles) && w != "null" {
			t.Errorf("%s: %+v, want figures", w, r)
		}
	}
}

type countingListener struct {
	net.Listener
	n atomic.Int32
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// With EchoAddr, the limits' NULLs (both modes) go to that echo server.
func TestLimitsUseTheGivenEchoServer(t *testing.T) {
	l0, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &countingListener{Listener: l0}
	defer l.Close()
	go ServeEcho(l)
	cfg := tinyConfig("")
	cfg.EchoAddr = l.Addr().String()
	cfg.Only = map[string]bool{"null": true, "one-meta": true}
	d, err := OpenDirect(t.TempDir(), cfg, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	n := 0
	if err := Interleave(context.Background(), []Stepper{d}, cfg, func(r Result) { n++ }); err != nil {
		t.Fatal(err)
	}
	// cfg.Conns connections for many in flight, one for one call.
	if got := int(l.n.Load()); n != 2 || got != cfg.Conns+1 {
		t.Errorf("%d results, %d connections to the echo server; want 2 and %d", n, got, cfg.Conns+1)
	}
}

// The one-call workloads read written files back, through both clients:
// a file whose data changed behind the server's back (same size, other
// bytes) fails the run. A hook overwrites file 0 when its create phase
// ends.
func TestReadBackCatchesBadData(t *testing.T) {
	for _, c := range []struct{ step, event, glob string }{
		{"one-meta", "end one-create", "one*-client0"},
		{"libnfs", "end libnfs-create", "libnfs*"},
	} {
		t.Run(c.step, func(t *testing.T) {
			d, dir := startNfsd(t)
			hook := filepath.Join(t.TempDir(), "hook")
			script := "#!/bin/sh\n[ \"$1 $3\" = \"" + c.event + "\" ] || exit 0\n" +
				"head -c 4096 /dev/zero > $(ls -d " + dir + "/nfsbench-*/" + c.glob + ")/f0000000\n"
			if err := os.WriteFile(hook, []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			cfg := tinyConfig(dir)
			cfg.Hook, cfg.Libnfs = hook, libnfsOnecall(t)
			cfg.Only = map[string]bool{c.step: true}
			tg := Target{Host: "127.0.0.1", NFSPort: d.Port(), MountPort: d.Port(), Export: "/volumes/default"}
			var why []string
			err := Run(context.Background(), tg, cfg, func(r Result) { why = append(why, r.Error) })
			if err == nil || !strings.Contains(strings.Join(why, "\n"), "differs") {
				t.Errorf("changed data went unnoticed: %v %q", err, why)
			}
		})
	}
}
