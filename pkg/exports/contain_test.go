package exports

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkResolveMiss measures what opening a node costs when the cache
// does not hold it (every call here misses): MAC, open_by_handle_at and
// the containment check of contain.go, for files and for directories
// three levels down.
func BenchmarkResolveMiss(b *testing.B) {
	root := b.TempDir()
	tb, err := Open(Config{Root: root, Log: quietLog(), MaxOpenNodes: 16})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tb.Close() })
	v, _, err := tb.CreateVolume(context.Background(), CreateRequest{ID: "bench", Options: DefaultOptions()})
	if err != nil {
		b.Fatal(err)
	}
	const n = 512
	files, dirs := make([][]byte, n), make([][]byte, n)
	for i := range n {
		dir := filepath.Join(v.Dir(), fmt.Sprintf("a%d", i%8), fmt.Sprintf("b%d", i%64), fmt.Sprintf("c%d", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "f"), nil, 0o644); err != nil {
			b.Fatal(err)
		}
		if files[i], err = tb.HandleAt(v, v.Root().FD(), filepath.Join(dir[len(v.Dir())+1:], "f")); err != nil {
			b.Fatal(err)
		}
		if dirs[i], err = tb.HandleAt(v, v.Root().FD(), dir[len(v.Dir())+1:]); err != nil {
			b.Fatal(err)
		}
	}
	for _, c := range []struct {
		name    string
		handles [][]byte
	}{{"file", files}, {"dir", dirs}} {
		b.Run(c.name, func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				node, err := tb.Resolve(c.handles[i%n])
				if err != nil {
					b.Fatal(err)
				}
				tb.Release(node)
			}
		})
	}
}
