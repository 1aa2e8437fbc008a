package exports

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rwxnfs/rwxnfs/internal/fuzzseed"
	"github.com/rwxnfs/rwxnfs/internal/rpctest"
)

var testSealer = newSealer([]byte("fuzz key: 32 bytes of secret...."))

func handleSeeds() [][]byte {
	h1, _ := testSealer.seal(0x1122334455667788, 1, []byte{1, 2, 3, 4, 5, 6, 7, 8})
	h2, _ := testSealer.seal(1, -1, bytes.Repeat([]byte{0xab}, maxKernelHandle))
	h3, _ := testSealer.seal(0, 0, nil)
	return [][]byte{h1, h2, h3, h1[:len(h1)-1], append(bytes.Clone(h1), 0)}
}

// FuzzParseHandle: parsing never panics or reads outside the handle, the
// fields it finds re-seal to the very handle exactly when its MAC is
// genuine, and so nothing but a handle we sealed verifies.
func FuzzParseHandle(f *testing.F) {
	for _, h := range handleSeeds() {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, h []byte) {
		p, err := parseHandle(h)
		fsid, ok := HandleFSID(h)
		if ok != (err == nil) || ok && fsid != p.fsid {
			t.Fatalf("HandleFSID %d %v, parse %v", fsid, ok, err)
		}
		if err != nil {
			if !errors.Is(err, ErrBadHandle) {
				t.Fatalf("error %v", err)
			}
			return
		}
		if len(h) > MaxHandle || len(p.kh) > maxKernelHandle || len(p.mac) != macLen {
			t.Fatalf("accepted a %d-byte handle with a %d-byte kernel handle", len(h), len(p.kh))
		}
		resealed, err := testSealer.seal(p.fsid, p.ktype, p.kh)
		if err != nil {
			t.Fatal(err)
		}
		if genuine := bytes.Equal(resealed, h); testSealer.verify(p) != genuine {
			t.Fatalf("verify %v for a handle that is genuine=%v", !genuine, genuine)
		}
	})
}

// FuzzResolve hands a real table arbitrary handles and variations of real
// ones (bytes xored in). Whatever comes in, Resolve does not panic, and
// any handle it accepts is one the table minted.
func FuzzResolve(f *testing.F) {
	tb, handles := fuzzTable(f)
	for i := range handles {
		f.Add(uint8(i), []byte{})
		f.Add(uint8(i), []byte{0, 1})
	}
	f.Add(uint8(0), []byte("\x01\x08........"))
	f.Fuzz(func(t *testing.T, which uint8, delta []byte) {
		h := bytes.Clone(handles[int(which)%len(handles)])
		if len(delta) > 0 && delta[0]&1 == 1 {
			h = delta[1:] // an arbitrary handle
		} else if len(delta) > 0 {
			for i, d := range delta[1:] {
				if i < len(h) {
					h[i] ^= d
				} else {
					h = append(h, d)
				}
			}
		}
		n, err := tb.Resolve(h)
		if err != nil {
			if !errors.Is(err, ErrBadHandle) && !errors.Is(err, ErrStale) {
				t.Fatalf("Resolve: %v", err)
			}
			return
		}
		defer tb.Release(n)
		for _, m := range handles {
			if bytes.Equal(m, h) {
				return
			}
		}
		t.Fatalf("accepted a handle the table never minted: %x", h)
	})
}

// fuzzTable is a table with one volume holding a file, a directory and a
// symlink, and the handles of all four.
func fuzzTable(f *testing.F) (*Table, [][]byte) {
	tb, err := Open(Config{Root: f.TempDir(), Log: rpctest.Logger(f)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { tb.Close() })
	v, err := tb.Create("fuzz", DefaultOptions())
	if err != nil {
		f.Fatal(err)
	}
	dir := v.Dir()
	os.WriteFile(filepath.Join(dir, "file"), []byte("data"), 0o644)
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	os.Symlink("file", filepath.Join(dir, "link"))
	handles := [][]byte{v.Root().Handle}
	for _, name := range []string{"file", "sub", "link"} {
		h, err := tb.HandleAt(v, v.Root().FD(), name)
		if err != nil {
			f.Fatal(err)
		}
		handles = append(handles, h)
	}
	return tb, handles
}

func TestResolveRejectsForgeries(t *testing.T) {
	tb, err := Open(Config{Root: t.TempDir(), Log: rpctest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	v, err := tb.Create("vol", DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(v.Dir(), "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := tb.HandleAt(v, v.Root().FD(), "f")
	if err != nil {
		t.Fatal(err)
	}
	n, err := tb.Resolve(h)
	if err != nil {
		t.Fatal(err)
	}
	tb.Release(n)
	var st unix.Stat_t
	for i := range h {
		forged := bytes.Clone(h)
		forged[i] ^= 0x40
		if n, err := tb.Resolve(forged); err == nil {
			n.Stat(&st)
			t.Fatalf("flipping a bit of byte %d gave a node (inode %d)", i, st.Ino)
		}
	}
}

// TestWriteFuzzSeeds rewrites testdata/fuzz when EXPORTS_WRITE_SEEDS is set.
func TestWriteFuzzSeeds(t *testing.T) {
	write := fuzzseed.Writer(t, "EXPORTS_WRITE_SEEDS")
	for i, h := range handleSeeds() {
		write("FuzzParseHandle", i, fmt.Sprintf("[]byte(%q)\n", h))
	}
	for i := range 4 {
		write("FuzzResolve", i, fmt.Sprintf("byte(%d)\n[]byte(%q)\n", i, []byte{0, byte(i + 1)}))
	}
	write("FuzzResolve", 4, fmt.Sprintf("byte(0)\n[]byte(%q)\n", "\x01\x01\x08........"))
}
