package exports

import (
	"context"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// Capacity reports the backing file system and what limits promised.
func TestCapacity(t *testing.T) {
	tb := openTable(t, t.TempDir())
	ctx := context.Background()
	for id, c := range map[string]int64{"a": 100 << 20, "b": 50 << 20, "c": 0} {
		if _, _, err := tb.CreateVolume(ctx, CreateRequest{ID: id, Capacity: Exactly(c), Options: DefaultOptions()}); err != nil {
			t.Fatal(err)
		}
	}
	a := tb.MustVolume("a")
	a.Quota.Add(30<<20, 1) // as if a client had written 30 MiB
	c, err := tb.Capacity()
	if err != nil {
		t.Fatal(err)
	}
	var fs unix.Statfs_t
	unix.Statfs(filepath.Dir(a.Dir()), &fs)
	if c.Total != int64(fs.Blocks)*fs.Bsize || c.Free <= 0 || c.Free > c.Total {
		t.Fatalf("file system figures %+v (statfs %+v)", c, fs)
	}
	if c.Promised != 120<<20 || c.Limited != 2 || c.Unlimited != 1 || c.Copying != 0 {
		t.Fatalf("promised %d (want %d), limited %d, unlimited %d, copying %d", c.Promised, 120<<20, c.Limited, c.Unlimited, c.Copying)
	}
	if want := max(0, c.Free-c.Promised); c.Available != want {
		t.Fatalf("available %d, want %d", c.Available, want)
	}
}
