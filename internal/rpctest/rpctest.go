// Package rpctest is what tests of RPC programs and of the servers that
// run them share, as net/http/httptest is for HTTP: a test logger, a
// bounded wait, hand-built call messages and record fragments, a raw
// record-marked connection that can send anything, and a round-trip
// fuzzer for XDR codecs.
package rpctest

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/rwxnfs/rwxnfs/pkg/rpc"
	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// Logger discards logs, or with go test -v writes them, debug level, to
// stderr.
func Logger(tb testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// Eventually polls cond until it holds. The 30-second bound only turns a
// hang into a failure; nothing is asserted about how long it takes.
func Eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			tb.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// U32 is v in XDR.
func U32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// Frag is b as one record fragment, with its header.
func Frag(b []byte, last bool) []byte {
	h := uint32(len(b))
	if last {
		h |= 1 << 31
	}
	return append(U32(h), b...)
}

// CallMsg encodes a call message (no record mark); args are already XDR.
func CallMsg(xid, prog, vers, proc uint32, cred rpc.OpaqueAuth, args []byte) []byte {
	w := xdr.NewWriter(64 + len(args))
	rpc.WriteCall(w, xid, prog, vers, proc, cred)
	w.FixedOpaque(args)
	return w.Bytes()
}

// None is the AUTH_NONE credential.
func None() rpc.OpaqueAuth { return rpc.OpaqueAuth{Flavor: rpc.AuthNone} }

// Conn speaks record-marked RPC by hand over TCP, so a test can send
// anything and read exactly what comes back.
type Conn struct {
	net.Conn
	tb testing.TB
	rr rpc.RecordReader
}

// Dial connects to addr; the connection closes when the test ends, and
// an I/O deadline of a minute turns a hang into a failure.
func Dial(tb testing.TB, addr string) *Conn {
	tb.Helper()
	return DialFrom(tb, "", addr)
}

// DialFrom is Dial from the local address src ("" for any): all of
// 127/8 is loopback, so tests play many client hosts with 127.0.0.x.
func DialFrom(tb testing.TB, src, addr string) *Conn {
	tb.Helper()
	var d net.Dialer
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(time.Minute))
	return &Conn{Conn: c, tb: tb, rr: rpc.RecordReader{R: bufio.NewReader(c), Max: 4 << 20}}
}

// WriteRaw writes bytes as they are.
func (c *Conn) WriteRaw(b []byte) {
	c.tb.Helper()
	if _, err := c.Write(b); err != nil {
		c.tb.Fatalf("write: %v", err)
	}
}

// Send writes msg as one record.
func (c *Conn) Send(msg []byte) { c.tb.Helper(); c.WriteRaw(Frag(msg, true)) }

// Call sends a call with AUTH_NONE.
func (c *Conn) Call(xid, prog, vers, proc uint32, args []byte) {
	c.tb.Helper()
	c.Send(CallMsg(xid, prog, vers, proc, None(), args))
}

// ReadRecord reads the next record as it is.
func (c *Conn) ReadRecord() ([]byte, error) { return c.rr.Read(nil, nil) }

// Reply reads one reply and decodes its header: the results, or the
// *rpc.ReplyError the reply carried.
func (c *Conn) Reply() (xid uint32, results []byte, err error) {
	c.tb.Helper()
	rec, err := c.ReadRecord()
	if err != nil {
		c.tb.Fatalf("reading reply: %v", err)
	}
	r := xdr.NewReader(rec)
	xid, err = rpc.ParseReply(r)
	var re *rpc.ReplyError
	if err != nil && !errors.As(err, &re) {
		c.tb.Fatalf("malformed reply %x: %v", rec, err)
	}
	return xid, r.Rest(), err
}

// ExpectReply reads a reply that must answer xid with results.
func (c *Conn) ExpectReply(xid uint32) []byte {
	c.tb.Helper()
	got, body, err := c.Reply()
	if err != nil || got != xid {
		c.tb.Fatalf("reply xid %#x err %v, want xid %#x success", got, err, xid)
	}
	return body
}

// ExpectError reads a reply that must answer xid with an RPC error and
// no results.
func (c *Conn) ExpectError(xid uint32) *rpc.ReplyError {
	c.tb.Helper()
	got, body, err := c.Reply()
	var re *rpc.ReplyError
	if !errors.As(err, &re) || got != xid {
		c.tb.Fatalf("reply xid %#x err %v, want xid %#x with an RPC error", got, err, xid)
	}
	if len(body) != 0 {
		c.tb.Fatalf("error reply carries %d more bytes: %x", len(body), body)
	}
	return re
}

// ExpectClosed checks that the server closed the connection.
func (c *Conn) ExpectClosed() {
	c.tb.Helper()
	rec, err := c.ReadRecord()
	if err == nil {
		c.tb.Fatalf("got a record %x, want the connection closed", rec)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.tb.Fatalf("connection still open: %v", err)
	}
}

// Codec is an XDR type with one encoder and one decoder.
type Codec interface {
	Decode(*xdr.Reader) error
	Encode(*xdr.Writer)
}

// Encode is c in XDR.
func Encode(c Codec) []byte {
	w := xdr.NewWriter(64)
	c.Encode(w)
	return w.Bytes()
}

// FuzzCodec fuzzes T's decoder from seeds: whatever the input, decoding
// must not panic, and whatever decodes must encode to exactly the bytes
// consumed (XDR is canonical, padding aside) and decode again to the
// same value.
func FuzzCodec[T any, P interface {
	*T
	Codec
}](f *testing.F, seeds [][]byte) {
	for _, s := range seeds {
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
		out := Encode(P(&v))
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
