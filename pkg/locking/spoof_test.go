package locking

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/rwxnfs/rwxnfs/internal/rpctest"
	"github.com/rwxnfs/rwxnfs/pkg/rpc"
	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// Adversarial lock clients: caller_name is whatever a client says it is,
// so the lock manager decides by the address a request came from. A host
// naming another host's caller_name can release nothing of the real
// one's, redirect nothing and end nothing of its (see Owner).

// dialNLMFrom is dialNLM from local address src (all of 127/8 is
// loopback: one address per simulated host).
func dialNLMFrom(t *testing.T, d *lockServer, src string) *nlmClient {
	t.Helper()
	dl := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	conn, err := dl.Dial("tcp", d.addr)
	if err != nil {
		t.Fatal(err)
	}
	c := rpc.NewClient(conn)
	t.Cleanup(func() { c.Close() })
	return &nlmClient{t: t, c: c}
}

func TestReleasesNamingAnotherHostReleaseNothing(t *testing.T) {
	h := startClientHost(t)
	d := startLockServer(t, h, Config{})
	victim := dialNLMFrom(t, d, "127.0.0.1")
	spoofer := dialNLMFrom(t, d, "127.0.0.2")
	mine := lk("hostA", 1, fh1, 0, 0)
	if st := victim.lock(LockArgs{Exclusive: true, Lock: mine, State: 3}); st != StatGranted {
		t.Fatalf("lock: %v", st)
	}
	share := ShareArgs{Share: Share4{CallerName: "hostA", FH: []byte("vol/v1/file2"), OH: []byte("oh"), Mode: ShareWrite, Access: ShareRead}}
	var sr ShareRes
	if err := sr.Decode(victim.mustCall(ProcShare, share.Encode)); err != nil || sr.Stat != StatGranted {
		t.Fatalf("share: %v %v", sr.Stat, err)
	}
	held := func(what string) {
		t.Helper()
		e := d.svc.Locks("", "hostA")
		if len(e) != 2 || e[0].Owner.Addr.String() != "127.0.0.1" {
			t.Fatalf("after %s: hostA holds %+v", what, e)
		}
		if res := dialNLMFrom(t, d, "127.0.0.3").test(true, lk("hostC", 9, fh1, 0, 1)); res.Stat != StatDenied {
			t.Fatalf("after %s: the victim's lock is gone (TEST %v)", what, res.Stat)
		}
	}
	// The same caller_name, svid and owner handle from another address
	// is another owner: it conflicts, and releases nothing.
	if st := spoofer.lock(LockArgs{Exclusive: true, Lock: mine, State: 99}); st != StatDenied {
		t.Fatalf("a spoofed lock on the victim's range: %v, want denied", st)
	}
	spoofer.unlock(mine)
	held("UNLOCK")
	spoofer.res(ProcCancel, (&CancArgs{Exclusive: true, Lock: mine}).Encode)
	held("CANCEL")
	spoofer.mustCall(ProcUnshare, share.Encode)
	held("UNSHARE")
	spoofer.mustCall(ProcFreeAll, (&Notify{Name: "hostA", State: 99}).Encode)
	held("FREE_ALL")
	if _, err := spoofer.call(NSMProg, NSMVers, SMProcNotify, (&StatChge{MonName: "hostA", State: 99}).Encode); err != nil {
		t.Fatal(err)
	}
	held("SM_NOTIFY")
	// A lock under the victim's name from elsewhere with a new state
	// neither counts as the victim's restart nor redirects its record.
	if st := spoofer.lock(LockArgs{Exclusive: true, Lock: lk("hostA", 1, "vol/v1/other", 0, 0), State: 101}); st != StatGranted {
		t.Fatalf("lock on another file: %v", st)
	}
	if st := victim.lock(LockArgs{Exclusive: true, Lock: lk("hostA", 1, fh1, 0, 0), State: 3}); st != StatGranted {
		t.Fatalf("the victim relocking: %v", st)
	}
	for _, ci := range d.svc.Clients() {
		if ci.Name == "hostA" && (ci.Addr != "127.0.0.1" || ci.State != 3) {
			t.Fatalf("the victim's record was taken over: %+v", ci)
		}
	}
	if e := d.svc.Locks("", "hostA"); len(e) != 3 {
		t.Fatalf("hostA holds %+v", e)
	}
	// The victim itself frees its own, and only its own.
	victim.mustCall(ProcFreeAll, (&Notify{Name: "hostA", State: 5}).Encode)
	if e := d.svc.Locks("", "hostA"); len(e) != 1 || e[0].Owner.Addr.String() != "127.0.0.2" {
		t.Fatalf("after the victim's FREE_ALL: %+v", e)
	}
}

// Requests that fail leave nothing behind: no owner, no client entry, no
// count, so that a flood of refused requests holds nothing.
func TestFailedLocksLeaveNothing(t *testing.T) {
	tb := NewTable(Limits{MaxLocksPerOwner: 1, MaxWaitersPerFile: 1}, nil)
	holder := Owner{Caller: "hostA", Svid: 1, OH: "a"}
	if st := tb.Lock(LockRequest{File: "f", Volume: "v", Owner: holder, Exclusive: true, Range: Range{0, ToEOF}}).Status; st != StatGranted {
		t.Fatal(st)
	}
	empty := func(what string) {
		t.Helper()
		tb.mu.Lock()
		defer tb.mu.Unlock()
		if len(tb.owners) != 1 || len(tb.clients) != 1 || tb.nlocks != 1 || tb.nwaiters != 0 {
			t.Fatalf("after %s: owners %d clients %v locks %d waiters %d", what, len(tb.owners), tb.clients, tb.nlocks, tb.nwaiters)
		}
	}
	other := Owner{Caller: "hostB", Svid: 1, OH: "b"}
	tb.Lock(LockRequest{File: "f", Volume: "v", Owner: other, Exclusive: true, Range: Range{0, 0}})
	empty("a denied lock")
	tb.Lock(LockRequest{File: "f", Volume: "v", Owner: other, Exclusive: true, Range: Range{0, 0}, Block: true})
	tb.Cancel("f", other, true, Range{0, 0})
	empty("a cancelled blocked lock")
	tb.Lock(LockRequest{File: "g", Volume: "v", Owner: holder, Exclusive: true, Range: Range{0, 0}})
	empty("a lock over the owner's limit")
	tb.Unlock("f", other, Range{0, ToEOF})
	tb.Unshare("f", other)
	empty("releases of what was never held")
}

// NLM and NSM arguments whose lengths disagree with the data, or pass the
// protocol's bounds: GARBAGE_ARGS (or, for a handle that decodes but can
// name no file, NLM4_STALE_FH), never silence, and nothing is held.
func TestMalformedLockArgumentsAreAnswered(t *testing.T) {
	d := startLockServer(t, startClientHost(t), Config{})
	c := dialNLM(t, d)
	lockArgs := func(l Lock4) []byte {
		return rpctest.Encode(&LockArgs{Cookie: []byte("c"), Exclusive: true, Lock: l, State: 1})
	}
	good := lockArgs(lk("hostA", 1, fh1, 0, 0))
	for _, tc := range []struct {
		name      string
		prog      uint32
		proc      uint32
		args      []byte
		wantStale bool
	}{
		{"cookie of 2000 bytes", NLMProg, ProcLock, rpctest.Encode(&LockArgs{Cookie: make([]byte, 2000), Lock: lk("hostA", 1, fh1, 0, 0)}), false},
		{"cookie length past the record", NLMProg, ProcLock, append(rpctest.U32(500), good[4:40]...), false},
		{"caller_name of 1025 bytes", NLMProg, ProcLock, lockArgs(lk(strings.Repeat("h", 1025), 1, fh1, 0, 0)), false},
		{"handle of 2000 bytes", NLMProg, ProcLock, lockArgs(Lock4{CallerName: "hostA", FH: make([]byte, 2000), OH: []byte("o")}), false},
		{"handle of 100 bytes", NLMProg, ProcLock, lockArgs(Lock4{CallerName: "hostA", FH: make([]byte, 100), OH: []byte("o")}), true},
		{"record cut in the lock", NLMProg, ProcLock, good[:len(good)-10], false},
		{"FREE_ALL name of 2000 bytes", NLMProg, ProcFreeAll, rpctest.Encode(&Notify{Name: strings.Repeat("h", 2000)}), false},
		{"SM_NOTIFY mon_name of 2000 bytes", NSMProg, SMProcNotify, rpctest.Encode(&StatChge{MonName: strings.Repeat("h", 2000), State: 3}), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vers := uint32(NLMVers)
			if tc.prog == NSMProg {
				vers = NSMVers
			}
			res, err := c.call(tc.prog, vers, tc.proc, func(w *xdr.Writer) { w.FixedOpaque(tc.args) })
			if tc.wantStale {
				var r Res
				if err != nil || r.Decode(xdr.NewReader(res)) != nil || r.Stat != StatStaleFH {
					t.Fatalf("got %v %x, want NLM4_STALE_FH", err, res)
				}
				return
			}
			var re *rpc.ReplyError
			if !errors.As(err, &re) || re.Accept != rpc.GarbageArgs {
				t.Fatalf("got %v %x, want GARBAGE_ARGS", err, res)
			}
		})
	}
	if locks, waiters := d.svc.Table().Counts(); locks != 0 || waiters != 0 {
		t.Fatalf("malformed requests left %d locks, %d waiters", locks, waiters)
	}
	if st := c.lock(LockArgs{Exclusive: true, Lock: lk("hostA", 1, fh1, 0, 0)}); st != StatGranted {
		t.Fatalf("a good lock after them: %v", st)
	}
}

// Refused lock requests under ever new caller_names do not fill the
// monitor list (MaxClients): the record a refused first request wrote
// goes with it, and a real client can still lock.
func TestRefusedLocksFillNoMonitorList(t *testing.T) {
	d := startLockServer(t, startClientHost(t), Config{MaxClients: 3})
	c := dialNLM(t, d)
	if st := c.lock(LockArgs{Exclusive: true, Lock: lk("hostA", 1, fh1, 0, 0)}); st != StatGranted {
		t.Fatal(st)
	}
	for i := range 20 {
		if st := c.lock(LockArgs{Exclusive: true, Lock: lk(fmt.Sprintf("flood%d", i), 1, fh1, 0, 0)}); st != StatDenied {
			t.Fatalf("flood %d: %v", i, st)
		}
	}
	monitored := 0
	for _, ci := range d.svc.Clients() {
		if ci.Monitored {
			monitored++
		}
	}
	if monitored != 1 {
		t.Fatalf("monitored after refused requests: %+v", d.svc.Clients())
	}
	if st := c.lock(LockArgs{Exclusive: true, Lock: lk("hostB", 1, "vol/v1/other", 0, 0)}); st != StatGranted {
		t.Fatalf("a real client after the flood: %v", st)
	}
}
