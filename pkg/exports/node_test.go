package exports

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// The default cache size keeps within the descriptor limit even when
// every node holds two descriptors, and within 1/64 of the memory nfsd
// may use.
func TestDefaultMaxOpenNodesFitsLimits(t *testing.T) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	n := DefaultMaxOpenNodes()
	mem := memoryLimit()
	t.Logf("%d nodes: descriptor limit %d, memory %d MiB", n, rl.Cur, mem>>20)
	if n < minOpenNodes || n > maxOpenNodesCap {
		t.Fatalf("%d nodes", n)
	}
	if n > minOpenNodes && (uint64(2*n+fdReserve) > rl.Cur || uint64(n)*nodeCost > mem/64) {
		t.Fatalf("%d nodes with a descriptor limit of %d and %d bytes of memory", n, rl.Cur, mem)
	}
}

// BenchmarkResolveSweep: resolving every handle of a flat tree in turn,
// as a stat-all over it does (GETATTR of each file), with the cache sized
// as given, over a tree larger than the old fixed 8,192 (a miss each: open_by_handle_at, the MAC, a close) and smaller than the new default (a hit each).
func BenchmarkResolveSweep(b *testing.B) {
	const files = 10000
	for _, max := range []int{8192, 16384} {
		b.Run(fmt.Sprintf("max=%d", max), func(b *testing.B) {
			tb, err := Open(Config{Root: b.TempDir(), Log: quietLog(), MaxOpenNodes: max})
			if err != nil {
				b.Fatal(err)
			}
			defer tb.Close()
			v, err := tb.Create("vol", DefaultOptions())
			if err != nil {
				b.Fatal(err)
			}
			hs := make([][]byte, files)
			for i := range hs {
				name := fmt.Sprintf("f%05d", i)
				if err := os.WriteFile(filepath.Join(v.Dir(), name), nil, 0o644); err != nil {
					b.Fatal(err)
				}
				if hs[i], err = tb.HandleAt(v, v.Root().FD(), name); err != nil {
					b.Fatal(err)
				}
			}
			for _, h := range hs { // warm
				n, err := tb.Resolve(h)
				if err != nil {
					b.Fatal(err)
				}
				tb.Release(n)
			}
			i := 0
			for b.Loop() {
				n, err := tb.Resolve(hs[i%files])
				if err != nil {
					b.Fatal(err)
				}
				tb.Release(n)
				i++
			}
		})
	}
}
