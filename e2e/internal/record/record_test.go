package record

import (
	"bytes"
	"testing"
)

func TestRoundTripAndDamage(t *testing.T) {
	var buf bytes.Buffer
	for s := 1; s <= 3; s++ {
		for _, w := range []string{"a", "b"} {
			b, err := Make(w, s, 64)
			if err != nil {
				t.Fatal(err)
			}
			buf.Write(b)
		}
	}
	want := map[string]int{"a": 3, "b": 3}
	if r := Verify(buf.Bytes(), 64, want); !r.OK() || r.Valid != 6 {
		t.Fatalf("clean file: %v", r)
	}
	d := bytes.Clone(buf.Bytes())
	d[70] ^= 1 // corrupt record 2
	if r := Verify(d, 64, want); r.Torn != 1 || r.Lost != 1 {
		t.Fatalf("corrupted: %v", r)
	}
	b1, _ := Make("a", 1, 64)
	d = append(bytes.Clone(buf.Bytes()), b1...)
	if r := Verify(d, 64, want); r.Dups != 1 || r.OK() {
		t.Fatalf("duplicate: %v", r)
	}
	b4, _ := Make("a", 4, 64)
	b0, _ := Make("a", 2, 64)
	if r := Verify(append(b4, b0...), 64, map[string]int{}); r.OutOfOrd != 1 {
		t.Fatalf("order: %v", r)
	}
	if _, err := Make("a-very-long-writer-name-indeed-yes", 1, 32); err == nil {
		t.Fatal("too small accepted")
	}
}
