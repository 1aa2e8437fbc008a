package locking

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rwxnfs/rwxnfs/internal/rpctest"
	"github.com/rwxnfs/rwxnfs/pkg/rpc"
	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// recordClients runs a server in dir on which each named client takes a
// lock, then stops it as a crash would: the locks are gone, the monitor
// list stays.
func recordClients(t *testing.T, h *clientHost, dir string, names ...string) {
	t.Helper()
	d := startLockServer(t, h, Config{StateDir: dir})
	c := dialNLM(t, d)
	for i, n := range names {
		if st := c.lock(LockArgs{Exclusive: true, Lock: lk(n, 1, fh1, uint64(i), 1), State: 7}); st != StatGranted {
			t.Fatal(st)
		}
	}
	d.stop()
}

func readState(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func smRecords(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "sm"))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestRestartNotifiesAndGraceAdmitsReclaims(t *testing.T) {
	h := startClientHost(t)
	dir := t.TempDir()
	recordClients(t, h, dir, "hostA")
	if readState(t, dir) != "1" || smRecords(t, dir) != 1 {
		t.Fatalf("state %s, %d records", readState(t, dir), smRecords(t, dir))
	}
	d := startLockServer(t, h, Config{StateDir: dir, Grace: time.Minute, Settle: time.Hour})
	if !d.svc.InGrace() || d.svc.State() != 3 || readState(t, dir) != "3" {
		t.Fatalf("grace %v state %d", d.svc.InGrace(), d.svc.State())
	}
	var n StatChge
	if err := n.Decode(xdr.NewReader(h.next(t, NSMProg, SMProcNotify))); err != nil {
		t.Fatal(err)
	}
	if n.MonName != "127.0.0.1" || n.State != 3 {
		t.Fatalf("SM_NOTIFY %+v", n)
	}
	c := dialNLM(t, d)
	if st := c.lock(LockArgs{Exclusive: true, Lock: lk("hostB", 1, fh1, 100, 1)}); st != StatDeniedGracePeriod {
		t.Fatalf("new lock in grace: %v", st)
	}
	if tr := c.test(true, lk("hostB", 1, fh1, 0, 0)); tr.Stat != StatDeniedGracePeriod {
		t.Fatalf("test in grace: %v", tr.Stat)
	}
	// A request before any reclaim, within Settle of the notification,
	// does not end hostA's part of the grace period.
	if st := c.lock(LockArgs{Exclusive: true, Lock: lk("hostA", 1, fh1, 50, 1)}); st != StatDeniedGracePeriod {
		t.Fatalf("hostA new lock before reclaiming: %v", st)
	}
	if st := c.lock(LockArgs{Exclusive: true, Reclaim: true, Lock: lk("hostA", 1, fh1, 0, 1), State: 7}); st != StatGranted {
		t.Fatalf("reclaim: %v", st)
	}
	if st := c.lock(LockArgs{Exclusive: true, Reclaim: true, Lock: lk("hostA", 2, fh1, 5, 1), State: 7}); st != StatGranted {
		t.Fatalf("reclaim: %v", st)
	}
	if st := c.unlock(lk("hostA", 2, fh1, 5, 1)); st != StatGranted {
		t.Fatalf("unlock in grace: %v", st)
	}
	if !d.svc.InGrace() {
		t.Fatal("grace ended early")
	}
	// hostA's first new request after its reclaims: it has finished, and
	// it was the only client recorded, so the grace period ends.
	if st := c.lock(LockArgs{Lock: lk("hostA", 3, fh1, 50, 1), State: 7}); st != StatGranted {
		t.Fatalf("new lock after reclaims: %v", st)
	}
	if d.svc.InGrace() {
		t.Fatal("grace period still on")
	}
	if st := c.lock(LockArgs{Exclusive: true, Lock: lk("hostB", 1, fh1, 0, 0)}); st != StatDenied {
		t.Fatalf("conflict with reclaimed lock: %v", st)
	}
	if st := c.lock(LockArgs{Exclusive: true, Reclaim: true, Lock: lk("hostB", 1, fh1, 200, 1)}); st != StatDenied {
		t.Fatalf("late reclaim: %v", st)
	}
	// Restarting again moves the state on again.
	d.stop()
	d2 := startLockServer(t, h, Config{StateDir: dir, Grace: -1})
	if d2.svc.State() != 5 || d2.svc.InGrace() {
		t.Fatalf("state %d grace %v", d2.svc.State(), d2.svc.InGrace())
	}
}

func TestGraceEnds(t *testing.T) {
	h := startClientHost(t)
	t.Run("timeout", func(t *testing.T) {
		dir := t.TempDir()
		recordClients(t, h, dir, "hostA")
		d := startLockServer(t, h, Config{StateDir: dir, Grace: 200 * time.Millisecond, Settle: time.Hour})
		if !d.svc.InGrace() {
			t.Fatal("no grace period")
		}
		rpctest.Eventually(t, "grace timeout", func() bool { return !d.svc.InGrace() })
	})
	t.Run("settle", func(t *testing.T) {
		dir := t.TempDir()
		recordClients(t, h, dir, "hostA")
		d := startLockServer(t, h, Config{StateDir: dir, Grace: time.Minute, Settle: 30 * time.Millisecond})
		c := dialNLM(t, d)
		rpctest.Eventually(t, "hostA settles by sending a new request", func() bool {
			return c.lock(LockArgs{Lock: lk("hostA", 1, fh1, 0, 1)}) == StatGranted
		})
		if d.svc.InGrace() {
			t.Fatal("grace on")
		}
	})
	t.Run("undeliverable", func(t *testing.T) {
		dir := t.TempDir()
		recordClients(t, h, dir, "hostA", "hostB")
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		dead := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		d := startLockServer(t, h, Config{StateDir: dir, Grace: time.Minute, NotifyRetries: 1, Dialer: PortmapDialer{Port: dead}})
		rpctest.Eventually(t, "grace ends when nobody can be told", func() bool { return !d.svc.InGrace() })
	})
	t.Run("free_all and sm_notify", func(t *testing.T) {
		dir := t.TempDir()
		recordClients(t, h, dir, "hostA", "hostB")
		d := startLockServer(t, h, Config{StateDir: dir, Grace: time.Minute, Settle: time.Hour})
		c := dialNLM(t, d)
		c.mustCall(ProcFreeAll, (&Notify{Name: "hostA", State: 9}).Encode)
		if !d.svc.InGrace() {
			t.Fatal("grace ended with hostB unsettled")
		}
		if _, err := c.call(NSMProg, NSMVers, SMProcNotify, (&StatChge{MonName: "hostB", State: 9}).Encode); err != nil {
			t.Fatal(err)
		}
		if d.svc.InGrace() {
			t.Fatal("grace on after every client settled")
		}
	})
	t.Run("nobody recorded", func(t *testing.T) {
		d := startLockServer(t, h, Config{})
		if d.svc.InGrace() {
			t.Fatal("grace period with no clients to wait for")
		}
	})
}

func TestSMNotifyReleasesLocks(t *testing.T) {
	h := startClientHost(t)
	d := startLockServer(t, h, Config{})
	c := dialNLM(t, d)
	notify := func(name string, state int32) {
		t.Helper()
		if _, err := c.call(NSMProg, NSMVers, SMProcNotify, (&StatChge{MonName: name, State: state}).Encode); err != nil {
			t.Fatal(err)
		}
	}
	c.lock(LockArgs{Exclusive: true, Lock: lk("hostA", 1, fh1, 0, 0), State: 7})
	c.lock(LockArgs{Block: true, Exclusive: true, Lock: lk("hostB", 1, fh1, 0, 0), State: 3})
	notify("hostA", 7) // the state hostA already uses: a stale duplicate
	if len(d.svc.Locks("", "hostA")) != 1 {
		t.Fatal("duplicate SM_NOTIFY released locks")
	}
	notify("hostA", 9)
	h.next(t, NLMProg, ProcGranted)
	rpctest.Eventually(t, "hostB granted", func() bool {
		e := d.svc.Locks("", "")
		return len(e) == 1 && e[0].Owner.Caller == "hostB" && e[0].Kind == KindLock
	})
	// hostA's requests now carry state 9: no surprise.
	c.lock(LockArgs{Lock: lk("hostA", 1, "vol/v1/f2", 0, 10), State: 9})
	// A new state in a request means hostA restarted again before its
	// SM_NOTIFY arrived: its older locks go.
	if st := c.lock(LockArgs{Lock: lk("hostA", 1, "vol/v1/f2", 20, 10), State: 11}); st != StatGranted {
		t.Fatal(st)
	}
	if e := d.svc.Locks("", "hostA"); len(e) != 1 || e[0].Range != (Range{20, 29}) {
		t.Fatalf("hostA: %+v", e)
	}
	// An SM_NOTIFY whose name we do not know is matched by address.
	notify("unknown-name", 1)
	if l, _ := d.svc.Table().Counts(); l != 0 {
		t.Fatalf("locks left: %+v", d.svc.Locks("", ""))
	}
}

func TestNSMProcedures(t *testing.T) {
	h := startClientHost(t)
	dir := t.TempDir()
	d := startLockServer(t, h, Config{StateDir: dir})
	c := dialNLM(t, d)
	call := func(proc uint32, enc func(*xdr.Writer)) *xdr.Reader {
		t.Helper()
		b, err := c.call(NSMProg, NSMVers, proc, enc)
		if err != nil {
			t.Fatalf("proc %d: %v", proc, err)
		}
		return xdr.NewReader(b)
	}
	call(SMProcNull, nil)
	var sr SMStatRes
	if sr.Decode(call(SMProcStat, (&SMName{MonName: "x"}).Encode)); sr.Res != SMStatSucc || sr.State != 1 {
		t.Fatalf("SM_STAT %+v", sr)
	}
	mon := Mon{MonID: MonID{MonName: "peer", MyID: MyID{MyName: "127.0.0.1", Prog: testCallbackProg, Vers: 1, Proc: 1}}}
	copy(mon.Priv[:], "private-16-bytes")
	if sr.Decode(call(SMProcMon, mon.Encode)); sr.Res != SMStatSucc {
		t.Fatalf("SM_MON %+v", sr)
	}
	call(SMProcNotify, (&StatChge{MonName: "peer", State: 41}).Encode)
	var st SMStatus
	if err := st.Decode(xdr.NewReader(h.next(t, testCallbackProg, 1))); err != nil {
		t.Fatal(err)
	}
	if st.MonName != "peer" || st.State != 41 || string(st.Priv[:]) != "private-16-bytes" {
		t.Fatalf("status callback %+v", st)
	}
	if r := call(SMProcUnmon, mon.MonID.Encode); r.Int32() != 1 {
		t.Fatal("SM_UNMON state")
	}
	if len(d.svc.mon.regs) != 0 {
		t.Fatal("registration left")
	}
	call(SMProcMon, mon.Encode)
	if r := call(SMProcUnmonAll, mon.MonID.MyID.Encode); r.Int32() != 1 || len(d.svc.mon.regs) != 0 {
		t.Fatal("SM_UNMON_ALL")
	}
	call(SMProcSimuCrash, nil)
	if d.svc.State() != 3 || readState(t, dir) != "3" {
		t.Fatalf("after SM_SIMU_CRASH: %d", d.svc.State())
	}
	_, err := c.call(NSMProg, NSMVers, SMProcMon, func(w *xdr.Writer) { w.String("only a name") })
	var re *rpc.ReplyError
	if !errors.As(err, &re) || re.Accept != rpc.GarbageArgs {
		t.Fatalf("garbage: %v", err)
	}
	if _, err := c.call(NSMProg, NSMVers, 42, nil); !errors.As(err, &re) || re.Accept != rpc.ProcUnavail {
		t.Fatalf("proc 42: %v", err)
	}
}

func TestMonitorRecordsAndSweep(t *testing.T) {
	dir := t.TempDir()
	d := startLockServer(t, startClientHost(t), Config{StateDir: dir, UnmonitorAfter: time.Minute})
	c := dialNLM(t, d)
	c.lock(LockArgs{Lock: lk("hostA", 1, fh1, 0, 0), State: 5})
	c.lock(LockArgs{Lock: lk("hostA", 2, fh1, 0, 0), State: 5})
	if smRecords(t, dir) != 1 {
		t.Fatal("no record")
	}
	b, err := os.ReadFile(filepath.Join(dir, "sm", recordFile("hostA")))
	if err != nil || !strings.Contains(string(b), `"name":"hostA"`) || !strings.Contains(string(b), `"addr":"127.0.0.1"`) || !strings.Contains(string(b), `"state":5`) {
		t.Fatalf("record %s %v", b, err)
	}
	d.svc.sweep(time.Now().Add(time.Hour))
	if smRecords(t, dir) != 1 {
		t.Fatal("record of an active client swept")
	}
	c.unlock(lk("hostA", 1, fh1, 0, 0))
	c.unlock(lk("hostA", 2, fh1, 0, 0))
	d.svc.sweep(time.Now())
	if smRecords(t, dir) != 1 {
		t.Fatal("record swept before idle time")
	}
	d.svc.sweep(time.Now().Add(time.Hour))
	if smRecords(t, dir) != 0 {
		t.Fatal("idle record kept")
	}
	for _, ci := range d.svc.Clients() {
		t.Fatalf("client left: %+v", ci)
	}
}

func TestAdminHooks(t *testing.T) {
	h := startClientHost(t)
	d := startLockServer(t, h, Config{})
	c := dialNLM(t, d)
	c.lock(LockArgs{Exclusive: true, Lock: lk("hostA", 1, "vol/v1/a", 0, 0)})
	c.lock(LockArgs{Lock: lk("hostA", 1, "vol/v2/b", 0, 10)})
	c.lock(LockArgs{Lock: lk("hostB", 1, "vol/v2/b", 5, 10)})
	c.lock(LockArgs{Block: true, Lock: lk("hostB", 1, "vol/v1/a", 0, 0)})
	if e := d.svc.Locks("v2", ""); len(e) != 2 || e[0].Volume != "v2" {
		t.Fatalf("v2: %+v", e)
	}
	if e := d.svc.Locks("", "hostB"); len(e) != 2 || e[0].Kind != KindWaiter || e[1].Kind != KindLock {
		t.Fatalf("hostB: %+v", e)
	}
	cl := d.svc.Clients()
	if len(cl) != 2 || !cl[0].Monitored || !cl[0].Active || cl[0].Addr != "127.0.0.1" {
		t.Fatalf("clients %+v", cl)
	}
	if n := d.svc.ReleaseClient("hostA"); n != 2 {
		t.Fatalf("released %d", n)
	}
	h.next(t, NLMProg, ProcGranted)
	if n := d.svc.DropVolume("v1"); n != 1 {
		t.Fatalf("dropped %d: %+v", n, d.svc.Locks("", ""))
	}
	if n := d.svc.DropFile([]byte("vol/v2/b")); n != 1 {
		t.Fatalf("dropped %d", n)
	}
	if l, w := d.svc.Table().Counts(); l != 0 || w != 0 {
		t.Fatal("left")
	}
}
