package locking

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/rwxnfs/rwxnfs/internal/fuzzseed"
	"github.com/rwxnfs/rwxnfs/internal/rpctest"
	"github.com/rwxnfs/rwxnfs/pkg/rpc"
	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// Every decoder is fuzzed: whatever the input, decoding must not panic or
// allocate more than the input allows, and whatever decodes must encode
// to exactly the bytes consumed (XDR is canonical up to padding) and
// decode again to the same value.

// lock4Codec and holder4Codec give the nested types the codec shape.
type lock4Codec struct{ Lock4 }

func (c *lock4Codec) Decode(r *xdr.Reader) error { c.Lock4.Decode(r); return r.Err() }

type holder4Codec struct{ Holder4 }

func (c *holder4Codec) Decode(r *xdr.Reader) error { c.Holder4.Decode(r); return r.Err() }

var seedLock = Lock4{CallerName: "client.example", FH: []byte("vol/v1/file1"), OH: []byte("42@client"), Svid: 42, Offset: 100, Len: 0}

// fuzzSeeds are the seed inputs of each decoder's fuzz target; they are
// also committed under testdata/fuzz (see TestWriteFuzzSeeds).
var fuzzSeeds = map[string][][]byte{
	"FuzzLock4":      {rpctest.Encode(&lock4Codec{seedLock})},
	"FuzzHolder4":    {rpctest.Encode(&holder4Codec{Holder4{Exclusive: true, Svid: -1, OH: []byte("o"), Offset: 1 << 63, Len: 7}})},
	"FuzzTestArgs":   {rpctest.Encode(&TestArgs{Cookie: []byte{1, 2, 3}, Exclusive: true, Lock: seedLock})},
	"FuzzLockArgs":   {rpctest.Encode(&LockArgs{Cookie: []byte("c"), Block: true, Exclusive: true, Lock: seedLock, Reclaim: true, State: 3})},
	"FuzzCancArgs":   {rpctest.Encode(&CancArgs{Cookie: []byte("c"), Block: true, Lock: seedLock})},
	"FuzzUnlockArgs": {rpctest.Encode(&UnlockArgs{Cookie: []byte("cookie"), Lock: seedLock})},
	"FuzzRes":        {rpctest.Encode(&Res{Cookie: []byte("c"), Stat: StatBlocked})},
	"FuzzTestRes": {
		rpctest.Encode(&TestRes{Cookie: []byte("c"), Stat: StatDenied, Holder: Holder4{Svid: 9, OH: []byte("oh")}}),
		rpctest.Encode(&TestRes{Cookie: []byte("c"), Stat: StatGranted}),
	},
	"FuzzShareArgs": {rpctest.Encode(&ShareArgs{Cookie: []byte("c"), Share: Share4{CallerName: "h", FH: []byte("fh"), OH: []byte("oh"), Mode: ShareWrite, Access: ShareBoth}, Reclaim: true})},
	"FuzzShareRes":  {rpctest.Encode(&ShareRes{Cookie: []byte("c"), Stat: StatDenied, Sequence: 5})},
	"FuzzNotify":    {rpctest.Encode(&Notify{Name: "client.example", State: 7})},
	"FuzzSMName":    {rpctest.Encode(&SMName{MonName: "host"})},
	"FuzzSMStatRes": {rpctest.Encode(&SMStatRes{Res: SMStatFail, State: 3})},
	"FuzzMyID":      {rpctest.Encode(&MyID{MyName: "localhost", Prog: NLMProg, Vers: 4, Proc: 16})},
	"FuzzMonID":     {rpctest.Encode(&MonID{MonName: "peer", MyID: MyID{MyName: "localhost", Prog: 1, Vers: 2, Proc: 3}})},
	"FuzzMon":       {rpctest.Encode(&Mon{MonID: MonID{MonName: "peer", MyID: MyID{MyName: "127.0.0.1"}}, Priv: [16]byte{1, 2, 3}})},
	"FuzzStatChge":  {rpctest.Encode(&StatChge{MonName: "10.0.0.1", State: 5})},
	"FuzzSMStatus":  {rpctest.Encode(&SMStatus{MonName: "peer", State: 9, Priv: [16]byte{9}})},
}

func FuzzLock4(f *testing.F)      { rpctest.FuzzCodec[lock4Codec](f, fuzzSeeds[f.Name()]) }
func FuzzHolder4(f *testing.F)    { rpctest.FuzzCodec[holder4Codec](f, fuzzSeeds[f.Name()]) }
func FuzzTestArgs(f *testing.F)   { rpctest.FuzzCodec[TestArgs](f, fuzzSeeds[f.Name()]) }
func FuzzLockArgs(f *testing.F)   { rpctest.FuzzCodec[LockArgs](f, fuzzSeeds[f.Name()]) }
func FuzzCancArgs(f *testing.F)   { rpctest.FuzzCodec[CancArgs](f, fuzzSeeds[f.Name()]) }
func FuzzUnlockArgs(f *testing.F) { rpctest.FuzzCodec[UnlockArgs](f, fuzzSeeds[f.Name()]) }
func FuzzRes(f *testing.F)        { rpctest.FuzzCodec[Res](f, fuzzSeeds[f.Name()]) }
func FuzzTestRes(f *testing.F)    { rpctest.FuzzCodec[TestRes](f, fuzzSeeds[f.Name()]) }
func FuzzShareArgs(f *testing.F)  { rpctest.FuzzCodec[ShareArgs](f, fuzzSeeds[f.Name()]) }
func FuzzShareRes(f *testing.F)   { rpctest.FuzzCodec[ShareRes](f, fuzzSeeds[f.Name()]) }
func FuzzNotify(f *testing.F)     { rpctest.FuzzCodec[Notify](f, fuzzSeeds[f.Name()]) }
func FuzzSMName(f *testing.F)     { rpctest.FuzzCodec[SMName](f, fuzzSeeds[f.Name()]) }
func FuzzSMStatRes(f *testing.F)  { rpctest.FuzzCodec[SMStatRes](f, fuzzSeeds[f.Name()]) }
func FuzzMyID(f *testing.F)       { rpctest.FuzzCodec[MyID](f, fuzzSeeds[f.Name()]) }
func FuzzMonID(f *testing.F)      { rpctest.FuzzCodec[MonID](f, fuzzSeeds[f.Name()]) }
func FuzzMon(f *testing.F)        { rpctest.FuzzCodec[Mon](f, fuzzSeeds[f.Name()]) }
func FuzzStatChge(f *testing.F)   { rpctest.FuzzCodec[StatChge](f, fuzzSeeds[f.Name()]) }
func FuzzSMStatus(f *testing.F)   { rpctest.FuzzCodec[SMStatus](f, fuzzSeeds[f.Name()]) }

// failDialer refuses every callback at once: the handler fuzzers exercise
// the server, not the network.
type failDialer struct{}

func (failDialer) Dial(context.Context, netip.Addr, netip.Addr, uint32, uint32) (*rpc.Client, error) {
	return nil, errors.New("no network in fuzzing")
}

// handlerSeeds are whole requests: a procedure and its arguments.
type procSeed struct {
	proc uint32
	args []byte
}

func handlerSeeds() []procSeed {
	la := rpctest.Encode(&LockArgs{Cookie: []byte("c"), Block: true, Exclusive: true, Lock: seedLock, State: 3})
	ta := rpctest.Encode(&TestArgs{Cookie: []byte("c"), Exclusive: true, Lock: seedLock})
	ca := rpctest.Encode(&CancArgs{Cookie: []byte("c"), Block: true, Exclusive: true, Lock: seedLock})
	ua := rpctest.Encode(&UnlockArgs{Cookie: []byte("c"), Lock: seedLock})
	sa := rpctest.Encode(&ShareArgs{Cookie: []byte("c"), Share: Share4{CallerName: "h", FH: []byte("vol/v1/f"), OH: []byte("o"), Mode: 1, Access: 3}})
	return []procSeed{
		{uint32(ProcLock), la}, {uint32(ProcTest), ta}, {uint32(ProcCancel), ca}, {uint32(ProcUnlock), ua},
		{uint32(ProcLockMsg), la}, {uint32(ProcNMLock), la}, {uint32(ProcShare), sa}, {uint32(ProcUnshare), sa},
		{uint32(ProcFreeAll), rpctest.Encode(&Notify{Name: "client.example", State: 5})},
		{uint32(ProcGranted), ta}, {uint32(ProcLockRes), rpctest.Encode(&Res{Stat: 1})},
	}
}

func nsmHandlerSeeds() []procSeed {
	return []procSeed{
		{uint32(SMProcStat), rpctest.Encode(&SMName{MonName: "h"})},
		{uint32(SMProcMon), rpctest.Encode(&Mon{MonID: MonID{MonName: "peer", MyID: MyID{MyName: "127.0.0.1", Prog: 1, Vers: 1, Proc: 1}}})},
		{uint32(SMProcUnmon), rpctest.Encode(&MonID{MonName: "peer"})},
		{uint32(SMProcUnmonAll), rpctest.Encode(&MyID{MyName: "127.0.0.1"})},
		{uint32(SMProcNotify), rpctest.Encode(&StatChge{MonName: "client.example", State: 9})},
	}
}

// newFuzzService is one service shared by a fuzz target's iterations, so
// state builds up across them as it would on a real server.
func newFuzzService(f *testing.F) *Service {
	s, err := New(Config{
		Files: testFiles, StateDir: f.TempDir(), Dialer: failDialer{}, Log: rpctest.Logger(f), Grace: -1,
		MaxClients: 8, CallbackRetries: 1, Limits: Limits{MaxLocks: 256, MaxWaiters: 32, MaxLocksPerOwner: 32},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(s.Close)
	return s
}

func serveFuzz(t *testing.T, h rpc.Handler, prog, proc uint32, args []byte) {
	req := &rpc.Request{
		CallHeader: rpc.CallHeader{Prog: prog, Vers: 4, Proc: proc % 32},
		Args:       xdr.NewReader(args),
		RemoteIP:   netip.MustParseAddr("127.0.0.1"),
		Remote:     &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 900},
		Local:      &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2049},
		Network:    "tcp",
	}
	w := xdr.NewWriter(128)
	err := h.ServeRPC(context.Background(), req, w)
	var ce *rpc.CallError
	if err != nil && !errors.As(err, &ce) {
		t.Fatalf("proc %d: error %v is not an RPC error", proc, err)
	}
}

func FuzzNLMHandler(f *testing.F) {
	for _, s := range handlerSeeds() {
		f.Add(s.proc, s.args)
	}
	s := newFuzzService(f)
	f.Fuzz(func(t *testing.T, proc uint32, args []byte) {
		serveFuzz(t, nlmHandler{s}, NLMProg, proc, args)
		lim := s.table.Limits()
		if l, w := s.table.Counts(); l > lim.MaxLocks || w > lim.MaxWaiters {
			t.Fatalf("limits broken: %d locks %d waiters", l, w)
		}
	})
}

func FuzzNSMHandler(f *testing.F) {
	for _, s := range nsmHandlerSeeds() {
		f.Add(s.proc, s.args)
	}
	s := newFuzzService(f)
	f.Fuzz(func(t *testing.T, proc uint32, args []byte) {
		if proc%32 == SMProcSimuCrash {
			return // writes the state file: correct, but slow for a fuzzer
		}
		serveFuzz(t, nsmHandler{s}, NSMProg, proc, args)
	})
}

// TestWriteFuzzSeeds writes the seed corpus under testdata/fuzz when
// LOCKING_WRITE_SEEDS is set; the committed files are what plain
// `go test` runs through every fuzz target.
func TestWriteFuzzSeeds(t *testing.T) {
	write := fuzzseed.Writer(t, "LOCKING_WRITE_SEEDS")
	for target, seeds := range fuzzSeeds {
		for i, s := range seeds {
			write(target, i, fmt.Sprintf("[]byte(%q)\n", s))
		}
	}
	for i, s := range handlerSeeds() {
		write("FuzzNLMHandler", i, fmt.Sprintf("uint32(%d)\n[]byte(%q)\n", s.proc, s.args))
	}
	for i, s := range nsmHandlerSeeds() {
		write("FuzzNSMHandler", i, fmt.Sprintf("uint32(%d)\n[]byte(%q)\n", s.proc, s.args))
	}
}
