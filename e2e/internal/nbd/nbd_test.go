package nbd

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// The cache: reads see unflushed writes; a crash keeping nothing drops
// exactly the writes after the last flush (partial pages included); FUA
// makes one write durable and nothing else.
func TestVolatileCache(t *testing.T) {
	dir := t.TempDir()
	d, err := Serve(filepath.Join(dir, "disk"), 1<<20, filepath.Join(dir, "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	a, b, c := bytes.Repeat([]byte{'a'}, 6000), bytes.Repeat([]byte{'b'}, 100), bytes.Repeat([]byte{'c'}, 10)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(d.write(0, a, 1000, false))
	must(d.flush(0))
	must(d.write(0, b, 3000, false))   // inside a's range, not durable
	must(d.write(0, c, 500_000, true)) // durable by FUA
	got := make([]byte, 7000)
	must(d.read(got, 0))
	want := make([]byte, 7000)
	copy(want[1000:], a)
	copy(want[3000:], b)
	if !bytes.Equal(got, want) {
		t.Fatal("a read does not see the cached write")
	}
	d.Crash(0)
	must(d.read(got, 0))
	copy(want[1000:], a)
	if !bytes.Equal(got, want) {
		t.Fatal("after a crash: not the flushed contents")
	}
	got = make([]byte, 10)
	must(d.read(got, 500_000))
	if !bytes.Equal(got, c) {
		t.Fatal("a FUA write did not survive the crash")
	}
	if s := d.Stats(); s.Dropped != 1 || s.Flushes != 1 || s.FUAWrites != 1 {
		t.Fatalf("stats: %v", s)
	}
}

// A real NBD client (qemu-io) negotiates, writes, flushes and reads.
func TestQemuClient(t *testing.T) {
	qio, err := exec.LookPath("qemu-io")
	if err != nil {
		if os.Getenv("RWXNFS_STRICT") != "" {
			t.Fatal("qemu-io not installed (make deps installs qemu-utils)")
		}
		t.Skip("qemu-io not installed (qemu-utils)")
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "s")
	d, err := Serve(filepath.Join(dir, "disk"), 4<<20, sock)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	img := "nbd+unix:///?socket=" + sock
	if out, err := exec.Command(qio, "-f", "raw", "-c", "write -P 0x5a 8192 65536", "-c", "flush", img).CombinedOutput(); err != nil {
		t.Fatalf("qemu-io write: %v\n%s", err, out)
	}
	d.Crash(0)
	out, err := exec.Command(qio, "-f", "raw", "-r", "-c", "read -P 0x5a 8192 65536", img).CombinedOutput()
	if err != nil || strings.Contains(string(out), "Pattern verification failed") {
		t.Fatalf("qemu-io read after crash: %v\n%s", err, out)
	}
	if s := d.Stats(); s.Flushes == 0 {
		t.Fatalf("no FLUSH reached the disk: %v", s)
	}
}

// A held flush waits for the cut, which fails it and drops what it would
// have made durable.
func TestHeldFlushFailsAtTheCut(t *testing.T) {
	dir := t.TempDir()
	d, err := Serve(filepath.Join(dir, "disk"), 1<<20, filepath.Join(dir, "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.write(0, []byte("x"), 0, false); err != nil {
		t.Fatal(err)
	}
	d.HoldFlushes()
	res := make(chan error)
	go func() { res <- d.flush(0) }()
	for f, _ := d.Pending(); f == 0; f, _ = d.Pending() {
		runtime.Gosched()
	}
	d.Crash(0)
	if err := <-res; err == nil {
		t.Fatal("a flush held over the cut succeeded")
	}
	got := make([]byte, 1)
	d.read(got, 0)
	if s := d.Stats(); got[0] != 0 || s.CutsMidFlush != 1 || s.Dropped != 1 {
		t.Fatalf("after the cut: %q, %v", got, s)
	}
}
