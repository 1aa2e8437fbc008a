// Package xdr reads and writes the External Data Representation (RFC 4506)
// used by ONC RPC. It is hand-written rather than reflective because every
// NFS call passes through it: decoding never allocates for fixed-size items,
// every length is checked against both the remaining input and a caller-given
// maximum, and errors are sticky so decoders can read a whole structure and
// check Err once.
package xdr

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrShort means the input ended before the structure did.
var ErrShort = errors.New("xdr: input truncated")

// ErrTooLong is returned when a variable-length item exceeds its bound.
type ErrTooLong struct {
	Len, Max int
}

func (e ErrTooLong) Error() string {
	return fmt.Sprintf("xdr: length %d exceeds limit %d", e.Len, e.Max)
}

// Reader decodes XDR from a byte slice. The zero value reads nothing.
type Reader struct {
	buf []byte
	off int
	err error
}

// NewReader returns a Reader over b. Slices returned by Opaque and
// FixedOpaque alias b.
func NewReader(b []byte) *Reader { return &Reader{buf: b} }

// Reset points r at b and clears any error.
func (r *Reader) Reset(b []byte) { r.buf, r.off, r.err = b, 0, nil }

// Err returns the first error met, if any.
func (r *Reader) Err() error { return r.err }

// Remaining returns the number of unread bytes.
func (r *Reader) Remaining() int { return len(r.buf) - r.off }

// Offset returns how many bytes have been consumed.
func (r *Reader) Offset() int { return r.off }

// Rest returns the unread bytes without consuming them.
func (r *Reader) Rest() []byte { return r.buf[r.off:] }

// Fail records err unless an earlier error is already recorded.
func (r *Reader) Fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *Reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.buf)-r.off {
		r.err = ErrShort
		return nil
	}
	b := r.buf[r.off : r.off+n]
	r.off += n
	return b
}

// Uint32 reads an unsigned 32-bit integer.
func (r *Reader) Uint32() uint32 {
	b := r.take(4)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

// Int32 reads a signed 32-bit integer.
func (r *Reader) Int32() int32 { return int32(r.Uint32()) }

// Uint64 reads an unsigned hyper.
func (r *Reader) Uint64() uint64 {
	b := r.take(8)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// Bool reads an XDR boolean; values other than 0 and 1 are an error.
func (r *Reader) Bool() bool {
	v := r.Uint32()
	if v > 1 {
		r.Fail(fmt.Errorf("xdr: bad boolean %d", v))
	}
	return v == 1
}

func pad(n int) int { return (4 - n&3) & 3 }

// FixedOpaque reads n bytes plus padding.
func (r *Reader) FixedOpaque(n int) []byte {
	b := r.take(n)
	r.take(pad(n))
	if r.err != nil {
		return nil
	}
	return b
}

// Opaque reads a variable-length opaque of at most max bytes.
func (r *Reader) Opaque(max int) []byte {
	n := r.Uint32()
	if r.err != nil {
		return nil
	}
	if uint64(n) > uint64(max) {
		r.Fail(ErrTooLong{Len: int(min(n, 1<<31-1)), Max: max})
		return nil
	}
	return r.FixedOpaque(int(n))
}

// String reads a string of at most max bytes.
func (r *Reader) String(max int) string { return string(r.Opaque(max)) }

// Writer encodes XDR into a growing buffer.
type Writer struct {
	buf []byte
}

// NewWriter returns a Writer whose buffer starts with capacity c.
func NewWriter(c int) *Writer { return &Writer{buf: make([]byte, 0, c)} }

// Bytes returns the encoded bytes.
func (w *Writer) Bytes() []byte { return w.buf }

// Len returns the number of encoded bytes.
func (w *Writer) Len() int { return len(w.buf) }

// Reset empties the buffer, keeping its storage.
func (w *Writer) Reset() { w.buf = w.buf[:0] }

// Truncate drops everything after the first n bytes.
func (w *Writer) Truncate(n int) { w.buf = w.buf[:n] }

// Uint32 appends an unsigned 32-bit integer.
func (w *Writer) Uint32(v uint32) { w.buf = binary.BigEndian.AppendUint32(w.buf, v) }

// Int32 appends a signed 32-bit integer.
func (w *Writer) Int32(v int32) { w.Uint32(uint32(v)) }

// Uint64 appends an unsigned hyper.
func (w *Writer) Uint64(v uint64) { w.buf = binary.BigEndian.AppendUint64(w.buf, v) }

// Bool appends an XDR boolean.
func (w *Writer) Bool(v bool) {
	if v {
		w.Uint32(1)
	} else {
		w.Uint32(0)
	}
}

// FixedOpaque appends b and its padding.
func (w *Writer) FixedOpaque(b []byte) {
	w.buf = append(w.buf, b...)
	w.buf = append(w.buf, zeros[:pad(len(b))]...)
}

var zeros [4]byte

// Opaque appends a length-prefixed opaque.
func (w *Writer) Opaque(b []byte) {
	w.Uint32(uint32(len(b)))
	w.FixedOpaque(b)
}

// String appends a length-prefixed string.
func (w *Writer) String(s string) {
	w.Uint32(uint32(len(s)))
	w.buf = append(w.buf, s...)
	w.buf = append(w.buf, zeros[:pad(len(s))]...)
}

// Grow returns a slice of n bytes appended to the buffer (plus padding
// zeroed), for callers that fill data in place, such as READ replies.
func (w *Writer) Grow(n int) []byte {
	start := len(w.buf)
	total := n + pad(n)
	if cap(w.buf)-start < total {
		nb := make([]byte, start, 2*cap(w.buf)+total)
		copy(nb, w.buf)
		w.buf = nb
	}
	w.buf = w.buf[:start+total]
	clear(w.buf[start+n:])
	return w.buf[start : start+n]
}

// PutUint32At overwrites a previously written 32-bit value at offset off.
func (w *Writer) PutUint32At(off int, v uint32) {
	binary.BigEndian.PutUint32(w.buf[off:], v)
}

// Pad appends the zero padding that follows n bytes of opaque data, for
// callers that wrote the data themselves (see Grow and Truncate).
func (w *Writer) Pad(n int) { w.buf = append(w.buf, zeros[:pad(n)]...) }

// Window returns a Writer over the n bytes already written at off, for a
// header whose values are known only once what follows it is in place
// (a READ reply's count and end-of-file flag, after the data was read
// straight into the buffer). Writing through it changes w's bytes in
// place; it must write exactly n bytes (see Filled).
func (w *Writer) Window(off, n int) Writer { return Writer{buf: w.buf[off : off : off+n]} }

// Filled reports whether a Window was written to exactly its end (and so
// in place).
func (w *Writer) Filled() bool { return len(w.buf) == cap(w.buf) }
