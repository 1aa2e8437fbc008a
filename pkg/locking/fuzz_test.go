package locking

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"testing"

	"github.com/rwxnfs/rwxnfs/internal/fuzzseed"
	"github.com/rwxnfs/rwxnfs/pkg/rpc"
	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// Every decoder is fuzzed: whatever the input, decoding must not panic or
// allocate more than the input allows, and whatever decodes must encode
// to exactly the bytes consumed (XDR is canonical up to padding) and
// decode again to the same value.

type codec interface {
	Decode(*xdr.Reader) error
	Encode(*xdr.Writer)
}

// lock4Codec and holder4Codec give the nested types the codec shape.
type lock4Codec struct{ Lock4 }

func (c *lock4Codec) Decode(r *xdr.Reader) error { c.Lock4.Decode(r); return r.Err() }

type holder4Codec struct{ Holder4 }

func (c *holder4Codec) Decode(r *xdr.Reader) error { c.Holder4.Decode(r); return r.Err() }

func enc(c codec) []byte {
	w := xdr.NewWriter(64)
	c.Encode(w)
	return w.Bytes()
}

var seedLock = Lock4{CallerName: "client.example", FH: []byte("vol/v1/file1"), OH: []byte("42@client"), Svid: 42, Offset: 100, Len: 0}

// fuzzSeeds are the seed inputs of each decoder's fuzz target; they are
// also committed under testdata/fuzz (see TestWriteFuzzSeeds).
var fuzzSeeds = map[string][][]byte{
	"FuzzLock4":      {enc(&lock4Codec{seedLock})},
	"FuzzHolder4":    {enc(&holder4Codec{Holder4{Exclusive: true, Svid: -1, OH: []byte("o"), Offset: 1 << 63, Len: 7}})},
	"FuzzTestArgs":   {enc(&TestArgs{Cookie: []byte{1, 2, 3}, Exclusive: true, Lock: seedLock})},
	"FuzzLockArgs":   {enc(&LockArgs{Cookie: []byte("c"), Block: true, Exclusive: true, Lock: seedLock, Reclaim: true, State: 3})},
	"FuzzCancArgs":   {enc(&CancArgs{Cookie: []byte("c"), Block: true, Lock: seedLock})},
	"FuzzUnlockArgs": {enc(&UnlockArgs{Cookie: []byte("cookie"), Lock: seedLock})},
	"FuzzRes":        {enc(&Res{Cookie: []byte("c"), Stat: StatBlocked})},
	"FuzzTestRes": {
		enc(&TestRes{Cookie: []byte("c"), Stat: StatDenied, Holder: Holder4{Svid: 9, OH: []byte("oh")}}),
		enc(&TestRes{Cookie: []byte("c"), Stat: StatGranted}),
	},
	"FuzzShareArgs": {enc(&ShareArgs{Cookie: []byte("c"), Share: Share4{CallerName: "h", FH: []byte("fh"), OH: []byte("oh"), Mode: ShareWrite, Access: ShareBoth}, Reclaim: true})},
	"FuzzShareRes":  {enc(&ShareRes{Cookie: []byte("c"), Stat: StatDenied, Sequence: 5})},
	"FuzzNotify":    {enc(&Notify{Name: "client.example", State: 7})},
	"FuzzSMName":    {enc(&SMName{MonName: "host"})},
	"FuzzSMStatRes": {enc(&SMStatRes{Res: SMStatFail, State: 3})},
	"FuzzMyID":      {enc(&MyID{MyName: "localhost", Prog: NLMProg, Vers: 4, Proc: 16})},
	"FuzzMonID":     {enc(&MonID{MonName: "peer", MyID: MyID{MyName: "localhost", Prog: 1, Vers: 2, Proc: 3}})},
	"FuzzMon":       {enc(&Mon{MonID: MonID{MonName: "peer", MyID: MyID{MyName: "127.0.0.1"}}, Priv: [16]byte{1, 2, 3}})},
	"FuzzStatChge":  {enc(&StatChge{MonName: "10.0.0.1", State: 5})},
	"FuzzSMStatus":  {enc(&SMStatus{MonName: "peer", State: 9, Priv: [16]byte{9}})},
}

func fuzzCodec[T any, P interface {
	*T
	codec
}](f *testing.F) {
	for _, s := range fuzzSeeds[f.Name()] {
		f.Add(s)
	}
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var v T
		r := xdr.NewReader(b)
		if P(&v).Decode(r) != nil {
			return
		}
		out := enc(P(&v))
		if len(out) != r.Offset() {
			t.Fatalf("decoded %d bytes, encoded %d", r.Offset(), len(out))
		}
		var v2 T
		if err := P(&v2).Decode(xdr.NewReader(out)); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !reflect.DeepEqual(v, v2) {
			t.Fatalf("round trip:\n%+v\n%+v", v, v2)
		}
	})
}

func FuzzLock4(f *testing.F)      { fuzzCodec[lock4Codec](f) }
func FuzzHolder4(f *testing.F)    { fuzzCodec[holder4Codec](f) }
func FuzzTestArgs(f *testing.F)   { fuzzCodec[TestArgs](f) }
func FuzzLockArgs(f *testing.F)   { fuzzCodec[LockArgs](f) }
func FuzzCancArgs(f *testing.F)   { fuzzCodec[CancArgs](f) }
func FuzzUnlockArgs(f *testing.F) { fuzzCodec[UnlockArgs](f) }
func FuzzRes(f *testing.F)        { fuzzCodec[Res](f) }
func FuzzTestRes(f *testing.F)    { fuzzCodec[TestRes](f) }
func FuzzShareArgs(f *testing.F)  { fuzzCodec[ShareArgs](f) }
func FuzzShareRes(f *testing.F)   { fuzzCodec[ShareRes](f) }
func FuzzNotify(f *testing.F)     { fuzzCodec[Notify](f) }
func FuzzSMName(f *testing.F)     { fuzzCodec[SMName](f) }
func FuzzSMStatRes(f *testing.F)  { fuzzCodec[SMStatRes](f) }
func FuzzMyID(f *testing.F)       { fuzzCodec[MyID](f) }
func FuzzMonID(f *testing.F)      { fuzzCodec[MonID](f) }
func FuzzMon(f *testing.F)        { fuzzCodec[Mon](f) }
func FuzzStatChge(f *testing.F)   { fuzzCodec[StatChge](f) }
func FuzzSMStatus(f *testing.F)   { fuzzCodec[SMStatus](f) }

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
	la := enc(&LockArgs{Cookie: []byte("c"), Block: true, Exclusive: true, Lock: seedLock, State: 3})
	ta := enc(&TestArgs{Cookie: []byte("c"), Exclusive: true, Lock: seedLock})
	ca := enc(&CancArgs{Cookie: []byte("c"), Block: true, Exclusive: true, Lock: seedLock})
	ua := enc(&UnlockArgs{Cookie: []byte("c"), Lock: seedLock})
	sa := enc(&ShareArgs{Cookie: []byte("c"), Share: Share4{CallerName: "h", FH: []byte("vol/v1/f"), OH: []byte("o"), Mode: 1, Access: 3}})
	return []procSeed{
		{uint32(ProcLock), la}, {uint32(ProcTest), ta}, {uint32(ProcCancel), ca}, {uint32(ProcUnlock), ua},
		{uint32(ProcLockMsg), la}, {uint32(ProcNMLock), la}, {uint32(ProcShare), sa}, {uint32(ProcUnshare), sa},
		{uint32(ProcFreeAll), enc(&Notify{Name: "client.example", State: 5})},
		{uint32(ProcGranted), ta}, {uint32(ProcLockRes), enc(&Res{Stat: 1})},
	}
}

func nsmHandlerSeeds() []procSeed {
	return []procSeed{
		{uint32(SMProcStat), enc(&SMName{MonName: "h"})},
		{uint32(SMProcMon), enc(&Mon{MonID: MonID{MonName: "peer", MyID: MyID{MyName: "127.0.0.1", Prog: 1, Vers: 1, Proc: 1}}})},
		{uint32(SMProcUnmon), enc(&MonID{MonName: "peer"})},
		{uint32(SMProcUnmonAll), enc(&MyID{MyName: "127.0.0.1"})},
		{uint32(SMProcNotify), enc(&StatChge{MonName: "client.example", State: 9})},
	}
}

// newFuzzService is one service shared by a fuzz target's iterations, so
// state builds up across them as it would on a real server.
func newFuzzService(f *testing.F) *Service {
	s, err := New(Config{
		Files: testFiles, StateDir: f.TempDir(), Dialer: failDialer{}, Log: quiet, Grace: -1,
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
