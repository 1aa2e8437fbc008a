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

// Files keep resolving after an operator renames ROOT under a running
// server (the volume's path is read again), and a directory handle
// resolves however deep it lies.
func TestEnclosesAfterRootMoved(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "a")
	tb := openTable(t, root)
	v, _, err := tb.CreateVolume(context.Background(), CreateRequest{ID: "m", Options: DefaultOptions()})
	if err != nil {
		t.Fatal(err)
	}
	deep := filepath.Join("d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7")
	if err := os.MkdirAll(filepath.Join(v.Dir(), deep), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(v.Dir(), "f"), nil, 0o644)
	resolve := func(rel string) error {
		h, err := tb.HandleAt(v, v.Root().FD(), rel)
		if err != nil {
			return err
		}
		tb.Forget(h) // a miss, so the check runs
		n, err := tb.Resolve(h)
		if err == nil {
			tb.Release(n)
		}
		return err
	}
	for _, rel := range []string{"f", deep} {
		if err := resolve(rel); err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
	}
	if err := os.Rename(root, filepath.Join(parent, "b")); err != nil {
		t.Fatal(err)
	}
	if err := resolve("f"); err != nil {
		t.Fatalf("after ROOT moved: %v", err)
	}
}
