package rpc_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/rwxnfs/rwxnfs/internal/rpctest"
	"github.com/rwxnfs/rwxnfs/pkg/rpc"
	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// lastFragment is the record mark's last-fragment bit.
const lastFragment = 1 << 31

var u32, frag = rpctest.U32, rpctest.Frag

func callBytes(xid, prog, vers, proc uint32, cred rpc.OpaqueAuth) []byte {
	w := xdr.NewWriter(64)
	rpc.WriteCall(w, xid, prog, vers, proc, cred)
	return w.Bytes()
}

var sysCred = rpc.AuthSysCred{Stamp: 7, Machine: "client.example", UID: 1000, GID: 100, GIDs: []uint32{4, 24, 27}}

// fuzzSeeds are each target's seeds, also committed under testdata/fuzz
// (see TestWriteFuzzSeeds).
var fuzzSeeds = map[string][][]byte{
	"FuzzRecordReader": {
		frag([]byte("abcd"), true),
		append(append(frag([]byte("ab"), false), frag(nil, false)...), frag([]byte("cd"), true)...),
		u32(lastFragment | 0x7fffffff),
		frag(nil, true),
		append(frag(bytes.Repeat([]byte{1}, 1000), true), frag([]byte("next"), true)...),
	},
	"FuzzParseCall": {
		callBytes(1, 100003, 3, 1, rpc.OpaqueAuth{Flavor: rpc.AuthNone}),
		callBytes(0xdeadbeef, 100005, 3, 1, sysCred.Opaque()),
		append(u32(5), append(u32(rpc.Call), u32(3)...)...),
	},
	"FuzzParseAuthSys": {
		sysCred.Opaque().Body,
		rpc.AuthSysCred{Machine: "", GIDs: make([]uint32, 16)}.Opaque().Body,
	},
	"FuzzParseReply": {
		func() []byte {
			w := xdr.NewWriter(0)
			rpc.WriteAccepted(w, 1, rpc.Success)
			w.Uint32(0)
			return w.Bytes()
		}(),
		func() []byte {
			w := xdr.NewWriter(0)
			rpc.WriteAccepted(w, 2, rpc.ProgMismatch)
			w.Uint32(1)
			w.Uint32(3)
			return w.Bytes()
		}(),
		func() []byte { w := xdr.NewWriter(0); rpc.WriteRPCMismatch(w, 3); return w.Bytes() }(),
		func() []byte { w := xdr.NewWriter(0); rpc.WriteAuthError(w, 4, rpc.AuthBadCred); return w.Bytes() }(),
	},
}

func addSeeds(f *testing.F) {
	for _, s := range fuzzSeeds[f.Name()] {
		f.Add(s)
	}
	f.Add([]byte{})
}

// refRecords splits a stream into records the slow, obvious way.
func refRecords(stream []byte, max int) (recs [][]byte, err error) {
	var cur []byte
	started := false
	for {
		if len(stream) == 0 {
			if started {
				return recs, io.ErrUnexpectedEOF
			}
			return recs, io.EOF
		}
		if len(stream) < 4 {
			return recs, io.ErrUnexpectedEOF
		}
		h := binary.BigEndian.Uint32(stream)
		n := int(h &^ lastFragment)
		stream = stream[4:]
		started = true
		if len(cur)+n > max {
			return recs, rpc.ErrRecordTooLarge{}
		}
		if len(stream) < n {
			return recs, io.ErrUnexpectedEOF
		}
		cur = append(cur, stream[:n]...)
		stream = stream[n:]
		if h&lastFragment != 0 {
			if len(cur) == 0 {
				return recs, rpc.ErrEmptyRecord
			}
			recs = append(recs, cur)
			cur, started = nil, false
		}
	}
}

// FuzzRecordReader reads a stream of records with a small limit: whatever
// the stream, the reader returns exactly the records the reference
// splitter finds, stops with the same error, never reserves or holds
// more than the limit, and reserves every byte it reads.
func FuzzRecordReader(f *testing.F) {
	addSeeds(f)
	const max = 1024
	f.Fuzz(func(t *testing.T, stream []byte) {
		want, wantErr := refRecords(stream, max)
		rr := rpc.RecordReader{R: bytes.NewReader(stream), Max: max}
		var got [][]byte
		var err error
		for {
			reserved := 0
			var rec []byte
			rec, err = rr.Read(nil, func(n int, _ bool) error {
				reserved += n
				if reserved > max {
					t.Fatalf("reserved %d bytes, limit %d", reserved, max)
				}
				return nil
			})
			if err != nil {
				break
			}
			if reserved != len(rec) || cap(rec) > max {
				t.Fatalf("record of %d bytes (cap %d), %d reserved", len(rec), cap(rec), reserved)
			}
			got = append(got, append([]byte(nil), rec...))
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("records %q, want %q", got, want)
		}
		var tl rpc.ErrRecordTooLarge
		switch {
		case errors.As(wantErr, &tl):
			if !errors.As(err, &tl) {
				t.Fatalf("error %v, want a too-large record", err)
			}
		case err != wantErr:
			t.Fatalf("error %v, want %v", err, wantErr)
		}
	})
}

// briefProg is a program whose odd procedures are brief.
type briefProg struct{ rpc.HandlerFunc }

func (briefProg) Brief(_, _, proc uint32) bool { return proc%2 == 1 }

func TestMuxBrief(t *testing.T) {
	var m rpc.Mux
	nop := rpc.HandlerFunc(func(context.Context, *rpc.Request, *xdr.Writer) error { return nil })
	m.Handle(rpc.Program{Prog: 7, Low: 2, High: 3, Handler: briefProg{nop}})
	m.Handle(rpc.Program{Prog: 8, Low: 1, High: 1, Handler: nop})
	only8 := m.Only(8).(rpc.Brief)
	for _, c := range []struct {
		b                rpc.Brief
		prog, vers, proc uint32
		want             bool
	}{
		{&m, 7, 2, 1, true},    // the program says so
		{&m, 7, 3, 2, false},   // the program says not
		{&m, 7, 4, 2, true},    // PROG_MISMATCH, answered by the mux
		{&m, 9, 1, 2, true},    // PROG_UNAVAIL, answered by the mux
		{&m, 8, 1, 1, false},   // a handler that cannot tell
		{only8, 7, 2, 1, true}, // PROG_UNAVAIL through the view
		{only8, 8, 1, 1, false},
	} {
		if got := c.b.Brief(c.prog, c.vers, c.proc); got != c.want {
			t.Errorf("Brief(%d, %d, %d) = %v, want %v", c.prog, c.vers, c.proc, got, c.want)
		}
	}
}

// A reservation refused stops the read before the fragment is read.
func TestRecordReaderReserveRefused(t *testing.T) {
	stop := errors.New("no")
	r := bytes.NewReader(frag([]byte("abcdefgh"), true))
	rr := rpc.RecordReader{R: r, Max: 100}
	if _, err := rr.Read(nil, func(int, bool) error { return stop }); err != stop {
		t.Fatalf("got %v", err)
	}
	if r.Len() != 8 {
		t.Fatalf("read %d bytes of the body after the reservation failed", 8-r.Len())
	}
}

// A record sent as many tiny fragments is reassembled without copying it
// once per fragment.
func TestRecordReaderManyFragments(t *testing.T) {
	const size = 64 << 10
	var stream []byte
	for i := range size {
		stream = append(stream, frag([]byte{byte(i)}, i == size-1)...)
	}
	var rec []byte
	allocs := testing.AllocsPerRun(1, func() {
		var err error
		rr := rpc.RecordReader{R: bytes.NewReader(stream), Max: size}
		rec, err = rr.Read(nil, nil)
		if err != nil {
			t.Fatal(err)
		}
	})
	if len(rec) != size || rec[size-1] != byte((size-1)%256) {
		t.Fatalf("record of %d bytes", len(rec))
	}
	if allocs > 64 {
		t.Fatalf("%v allocations for a record in %d fragments", allocs, size)
	}
}

// FuzzParseCall: a call header decodes without panicking, its opaque
// bodies within their bound, and re-encodes to what was consumed; PeekProc
// names the same procedure whenever the header decodes.
func FuzzParseCall(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		r := xdr.NewReader(b)
		h, err := rpc.ParseCall(r)
		prog, vers, proc, peeked := rpc.PeekProc(b)
		if (err == nil || errors.Is(err, rpc.ErrBadAuth)) && (!peeked || prog != h.Prog || vers != h.Vers || proc != h.Proc) {
			t.Fatalf("PeekProc %v %d/%d/%d, ParseCall %d/%d/%d (%v)", peeked, prog, vers, proc, h.Prog, h.Vers, h.Proc, err)
		}
		if peeked && (errors.Is(err, rpc.ErrNotCall) || errors.Is(err, rpc.ErrBadRPCVersion)) {
			t.Fatalf("PeekProc took %x for a call: %v", b, err)
		}
		if err != nil {
			if errors.Is(err, rpc.ErrBadRPCVersion) && (len(b) < 12 || binary.BigEndian.Uint32(b[8:]) == 2) {
				t.Fatalf("RPC_MISMATCH for %x", b)
			}
			return
		}
		if len(h.Cred.Body) > rpc.MaxAuthBody || len(h.Verf.Body) > rpc.MaxAuthBody {
			t.Fatalf("auth bodies of %d and %d bytes", len(h.Cred.Body), len(h.Verf.Body))
		}
		w := xdr.NewWriter(64)
		rpc.WriteCall(w, h.XID, h.Prog, h.Vers, h.Proc, h.Cred)
		out := w.Bytes()
		out = out[:len(out)-8] // rpc.WriteCall's AUTH_NONE verifier
		w = xdr.NewWriter(0)
		w.Uint32(h.Verf.Flavor)
		w.Opaque(h.Verf.Body)
		out = append(out, w.Bytes()...)
		if len(out) != r.Offset() {
			t.Fatalf("consumed %d bytes, re-encoded %d", r.Offset(), len(out))
		}
		h2, err := rpc.ParseCall(xdr.NewReader(out))
		if err != nil || !reflect.DeepEqual(h, h2) {
			t.Fatalf("round trip: %+v\n%+v (%v)", h, h2, err)
		}
	})
}

// FuzzParseAuthSys: at most 16 groups and a 255-byte name, nothing
// trailing, and the credential round-trips through Opaque.
func FuzzParseAuthSys(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := rpc.ParseAuthSys(b)
		if err != nil {
			return
		}
		if len(c.GIDs) > rpc.MaxAuthGroups || len(c.Machine) > rpc.MaxMachineName {
			t.Fatalf("%d groups, %d-byte name accepted", len(c.GIDs), len(c.Machine))
		}
		o := c.Opaque()
		if o.Flavor != rpc.AuthSys || len(o.Body) != len(b) {
			t.Fatalf("decoded %d bytes, encoded %d", len(b), len(o.Body))
		}
		c2, err := rpc.ParseAuthSys(o.Body)
		if err != nil || !reflect.DeepEqual(c, c2) {
			t.Fatalf("round trip: %+v\n%+v (%v)", c, c2, err)
		}
	})
}

// FuzzParseReply: the client's reply decoder never panics, and what the
// server's encoders write decodes to what they meant.
func FuzzParseReply(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		r := xdr.NewReader(b)
		xid, err := rpc.ParseReply(r)
		var re *rpc.ReplyError
		if !errors.As(err, &re) {
			return
		}
		w := xdr.NewWriter(0)
		switch {
		case re.Mismatch:
			rpc.WriteRPCMismatch(w, xid)
		case re.Denied:
			rpc.WriteAuthError(w, xid, re.Auth)
		default:
			rpc.WriteAccepted(w, xid, re.Accept)
			if re.Accept == rpc.ProgMismatch {
				w.Uint32(re.Low)
				w.Uint32(re.Hi)
			}
		}
		r2 := xdr.NewReader(w.Bytes())
		xid2, err2 := rpc.ParseReply(r2)
		var re2 *rpc.ReplyError
		if xid2 != xid || !errors.As(err2, &re2) || r2.Remaining() != 0 {
			t.Fatalf("re-encoded reply: xid %d %v", xid2, err2)
		}
		same := re2.Denied == re.Denied && re2.Mismatch == re.Mismatch
		switch {
		case re.Mismatch:
			same = same && re2.Low == 2 && re2.Hi == 2 // what we serve
		case re.Denied:
			same = same && re2.Auth == re.Auth
		default:
			same = same && *re2 == *re
		}
		if !same {
			t.Fatalf("round trip: %+v\n%+v", re, re2)
		}
	})
}

// TestWriteFuzzSeeds rewrites testdata/fuzz when RPC_WRITE_SEEDS is set.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("RPC_WRITE_SEEDS") == "" {
		t.Skip("set RPC_WRITE_SEEDS=1 to rewrite testdata/fuzz")
	}
	seeds := map[string][][]byte{"FuzzClient": replySeeds()}
	for k, v := range fuzzSeeds {
		seeds[k] = v
	}
	for target, seeds := range seeds {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, s := range seeds {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed%02d", i)), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func replySeeds() [][]byte {
	var s [][]byte
	for _, r := range fuzzSeeds["FuzzParseReply"] {
		r = bytes.Clone(r)
		binary.BigEndian.PutUint32(r, 1) // the XID of the client's first call
		s = append(s, frag(r, true))
	}
	return append(s, u32(lastFragment|0x7fffffff), frag([]byte{0, 0, 0, 1, 0, 0}, true))
}

// FuzzClient answers a real client's call with arbitrary bytes (over an
// in-memory pipe, then hangs up): the call returns, with results only if
// a well-formed successful reply to its XID came, and never panics.
func FuzzClient(f *testing.F) {
	for _, s := range replySeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		cc, sc := net.Pipe()
		c := rpc.NewClient(cc)
		c.SetNextXID(0)
		go func() {
			rr := rpc.RecordReader{R: sc, Max: 1 << 10}
			rr.Read(nil, nil) // the call
			sc.Write(stream)
			sc.Close()
		}()
		body, err := c.Call(context.Background(), 1, 1, 0, nil)
		c.Close()
		if err == nil {
			rr := rpc.RecordReader{R: bytes.NewReader(stream), Max: rpc.MaxReply}
			for {
				rec, rerr := rr.Read(nil, nil)
				if rerr != nil {
					t.Fatalf("results %x from a stream with no successful reply", body)
				}
				r := xdr.NewReader(rec)
				if xid, perr := rpc.ParseReply(r); xid == 1 {
					if perr != nil || !bytes.Equal(r.Rest(), body) {
						t.Fatalf("results %x, reply %x (%v)", body, rec, perr)
					}
					return
				}
			}
		}
	})
}
