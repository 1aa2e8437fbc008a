package xdr

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// A decoding program: each op byte names a primitive (low 3 bits) and,
// for the variable-length ones, a size or bound (high 5 bits), so the
// fuzzer explores every sequence of reads over every input.
type value struct {
	kind byte
	u    uint64
	b    []byte
}

func (v value) String() string { return fmt.Sprintf("%d:%d:%x", v.kind, v.u, v.b) }

func decodeOps(r *Reader, ops []byte) []value {
	var out []value
	for _, op := range ops {
		n := int(op >> 3)
		v := value{kind: op & 7}
		switch v.kind {
		case 0:
			v.u = uint64(r.Uint32())
		case 1:
			v.u = uint64(uint32(r.Int32()))
		case 2:
			v.u = r.Uint64()
		case 3:
			if r.Bool() {
				v.u = 1
			}
		case 4:
			v.b = r.FixedOpaque(n)
		case 5:
			v.b = r.Opaque(n)
			if len(v.b) > n {
				panic(fmt.Sprintf("Opaque(%d) returned %d bytes", n, len(v.b)))
			}
		case 6:
			s := r.String(n)
			if len(s) > n {
				panic(fmt.Sprintf("String(%d) returned %d bytes", n, len(s)))
			}
			v.b = []byte(s)
		case 7:
			// Opaque with a huge bound: only the input limits it.
			v.b = r.Opaque(1<<31 - 1)
		}
		out = append(out, v)
	}
	return out
}

func encodeOps(w *Writer, vals []value) {
	for _, v := range vals {
		switch v.kind {
		case 0, 1:
			w.Uint32(uint32(v.u))
		case 2:
			w.Uint64(v.u)
		case 3:
			w.Bool(v.u == 1)
		case 4:
			w.FixedOpaque(v.b)
		case 5, 7:
			w.Opaque(v.b)
		case 6:
			w.String(string(v.b))
		}
	}
}

var readerSeeds = []struct{ ops, data []byte }{
	{[]byte{0, 1, 2, 3}, []byte("\x00\x00\x00\x07\xff\xff\xff\xfe\x00\x00\x00\x00\x00\x00\x00\x09\x00\x00\x00\x01")},
	{[]byte{5 | 8<<3, 6 | 4<<3, 4 | 3<<3}, []byte("\x00\x00\x00\x05hello\x00\x00\x00\x00\x00\x00\x03abc\x00xyz\x00")},
	{[]byte{7, 7}, []byte("\x7f\xff\xff\xff")},
	{[]byte{3}, []byte("\x00\x00\x00\x02")},
}

func FuzzReader(f *testing.F) {
	for _, s := range readerSeeds {
		f.Add(s.ops, s.data)
	}
	f.Fuzz(func(t *testing.T, ops, data []byte) {
		if len(ops) > 64 {
			ops = ops[:64]
		}
		r := NewReader(data)
		vals := decodeOps(r, ops)
		if r.Offset() > len(data) || r.Offset()+r.Remaining() != len(data) {
			t.Fatalf("offset %d remaining %d of %d", r.Offset(), r.Remaining(), len(data))
		}
		if r.Err() != nil {
			// Errors are sticky: nothing more is read.
			off := r.Offset()
			if r.Uint32() != 0 || r.Uint64() != 0 || r.Opaque(8) != nil || r.FixedOpaque(0) != nil || r.Offset() != off {
				t.Fatal("reads after an error returned data")
			}
			return
		}
		if r.Offset()%4 != 0 {
			t.Fatalf("decoded to unaligned offset %d", r.Offset())
		}
		// What decoded encodes to exactly the bytes consumed (equal up to
		// padding, which the reader does not inspect), and decodes again
		// to the same values.
		w := NewWriter(0)
		encodeOps(w, vals)
		if w.Len() != r.Offset() {
			t.Fatalf("consumed %d bytes, re-encoded to %d", r.Offset(), w.Len())
		}
		r2 := NewReader(w.Bytes())
		vals2 := decodeOps(r2, ops)
		if r2.Err() != nil || r2.Remaining() != 0 {
			t.Fatalf("re-decode: %v, %d left", r2.Err(), r2.Remaining())
		}
		if fmt.Sprint(vals) != fmt.Sprint(vals2) {
			t.Fatalf("round trip:\n%v\n%v", vals, vals2)
		}
	})
}

// An absurd length is refused without reading (or allocating) anything.
func TestOpaqueLengthBounds(t *testing.T) {
	for _, tc := range []struct {
		data []byte
		max  int
		want error
	}{
		{[]byte{0xff, 0xff, 0xff, 0xff}, 1 << 20, ErrTooLong{Len: 1<<31 - 1, Max: 1 << 20}},
		{[]byte{0, 0, 0, 9, 1, 2, 3, 4, 5, 6, 7, 8}, 8, ErrTooLong{Len: 9, Max: 8}},
		{[]byte{0x7f, 0xff, 0xff, 0xff}, 1<<31 - 1, ErrShort},
		{[]byte{0, 0, 0, 5, 1, 2, 3, 4, 5}, 8, ErrShort}, // padding missing
		{[]byte{0, 0, 0}, 8, ErrShort},
	} {
		r := NewReader(tc.data)
		if b := r.Opaque(tc.max); b != nil || r.Err() != tc.want {
			t.Errorf("%x: got %x, %v; want %v", tc.data, b, r.Err(), tc.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() {
		NewReader([]byte{0x7f, 0xff, 0xff, 0xf0}).Opaque(1<<31 - 1)
	}); n > 1 {
		t.Errorf("a refused opaque allocated %v times", n)
	}
}

func TestBoolRejectsOtherValues(t *testing.T) {
	r := NewReader([]byte{0, 0, 0, 2})
	r.Bool()
	if r.Err() == nil {
		t.Fatal("boolean 2 accepted")
	}
}

func TestWriterGrowPadTruncate(t *testing.T) {
	w := NewWriter(0)
	w.Uint32(1)
	b := w.Grow(5)
	copy(b, "hello")
	if w.Len() != 12 || !bytes.Equal(w.Bytes(), []byte("\x00\x00\x00\x01hello\x00\x00\x00")) {
		t.Fatalf("after Grow: %q", w.Bytes())
	}
	w.Truncate(6)
	w.Pad(2)
	w.PutUint32At(0, 7)
	if !bytes.Equal(w.Bytes(), []byte("\x00\x00\x00\x07he\x00\x00")) {
		t.Fatalf("after Truncate/Pad: %q", w.Bytes())
	}
	// Growing over old data zeroes the padding.
	w.Reset()
	copy(w.Grow(8), "xxxxxxxx")
	w.Reset()
	w.Grow(1)
	if !bytes.Equal(w.Bytes()[1:], []byte{0, 0, 0}) {
		t.Fatalf("stale padding: %x", w.Bytes())
	}
}

// TestWriteFuzzSeeds rewrites testdata/fuzz when XDR_WRITE_SEEDS is set;
// plain `go test` runs the committed files through FuzzReader.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("XDR_WRITE_SEEDS") == "" {
		t.Skip("set XDR_WRITE_SEEDS=1 to rewrite testdata/fuzz")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzReader")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range readerSeeds {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n[]byte(%q)\n", s.ops, s.data)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed%02d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// A Window writes in place over what was reserved, and Filled tells a
// window written short or (after a reallocation) elsewhere.
func TestWriterWindow(t *testing.T) {
	w := NewWriter(0)
	w.Uint32(1)
	w.Grow(8) // reserved
	w.Uint32(9)
	win := w.Window(4, 8)
	win.Uint32(2)
	if win.Filled() {
		t.Fatal("half-written window reports filled")
	}
	win.Uint32(3)
	if !win.Filled() {
		t.Fatal("window written to its end reports not filled")
	}
	if !bytes.Equal(w.Bytes(), []byte{0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 9}) {
		t.Fatalf("after window: %x", w.Bytes())
	}
	win.Uint32(4) // past the end: goes elsewhere, never over the 9
	if win.Filled() || w.Bytes()[15] != 9 {
		t.Fatalf("overlong window: filled %v, buffer %x", win.Filled(), w.Bytes())
	}
}
