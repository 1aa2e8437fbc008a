package exports

import (
	"encoding/hex"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkSeal: minting one handle (READDIRPLUS does this per entry).
func BenchmarkSeal(b *testing.B) {
	kh := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	for b.Loop() {
		if _, err := testSealer.seal(42, 1, kh); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHandleAt: name_to_handle_at plus sealing, as LOOKUP and
// READDIRPLUS mint a handle.
func BenchmarkHandleAt(b *testing.B) {
	dir := b.TempDir()
	if err := os.WriteFile(dir+"/f", nil, 0o644); err != nil {
		b.Fatal(err)
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(fd)
	t := &Table{sealer: testSealer}
	v := &Volume{FSID: 42}
	for b.Loop() {
		if _, err := t.HandleAt(v, fd, "f"); err != nil {
			b.Fatal(err)
		}
	}
}

// Handles are persistent: the same key and file give the same bytes in
// every version of the server, or clients holding handles from before an
// upgrade would see them stale. These bytes were sealed by the first
// release's code.
func TestSealIsStable(t *testing.T) {
	h, err := testSealer.seal(0x1122334455667788, 1, []byte{1, 2, 3, 4, 5, 6, 7, 8})
	if err != nil {
		t.Fatal(err)
	}
	const want = "01081122334455667788000000010102030405060708e5143a2cfb0339ea"
	if got := hex.EncodeToString(h); got != want {
		t.Fatalf("sealed %s, want %s", got, want)
	}
	if !testSealer.verify(mustParse(t, h)) {
		t.Fatal("a handle we sealed does not verify")
	}
}

func mustParse(t *testing.T, h []byte) parsedHandle {
	t.Helper()
	p, err := parseHandle(h)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
