package exports

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDeleteModes(t *testing.T) {
	root := t.TempDir()
	tb := openTable(t, root)
	for _, id := range []string{"a", "b", "c"} {
		v, _, err := tb.CreateVolume(context.Background(), CreateRequest{ID: id, Options: DefaultOptions()})
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(v.Dir(), "data"), []byte(id), 0o644)
	}
	a := tb.MustVolume("a")
	h := a.Root().Handle
	if res, err := tb.DeleteVolume("a", ReclaimDelete); err != nil || res.Path != "" {
		t.Fatal(res, err)
	}
	if _, err := tb.Resolve(h); !errors.Is(err, ErrStale) {
		t.Fatalf("handle of a deleted volume: %v, want stale", err)
	}
	if _, err := os.Stat(filepath.Join(root, "volumes", "a")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("tree still there: %v", err)
	}
	res, err := tb.DeleteVolume("b", ReclaimRetain)
	if err != nil || res.Path != filepath.Join(root, "retained", "b") {
		t.Fatal(res, err)
	}
	if got, _ := os.ReadFile(filepath.Join(res.Path, "data")); string(got) != "b" {
		t.Fatalf("retained data %q", got)
	}
	res, err = tb.DeleteVolume("c", ReclaimArchive)
	if err != nil || !strings.HasPrefix(res.Path, filepath.Join(root, "archive", "c-")) {
		t.Fatal(res, err)
	}
	if got, _ := os.ReadFile(filepath.Join(res.Path, "data")); string(got) != "c" {
		t.Fatalf("archived data %q", got)
	}
	if _, err := os.Stat(res.Path + ".json"); err != nil {
		t.Fatalf("archived metadata: %v", err)
	}
	if _, err := tb.DeleteVolume("a", ReclaimDelete); KindOf(err) != KindNotFound {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := tb.DeleteVolume("b", "shred"); KindOf(err) != KindInvalid {
		t.Fatalf("bad mode: %v", err)
	}
	tb.Close()
	if tb2 := openTable(t, root); len(tb2.Volumes()) != 0 {
		t.Fatalf("deleted volumes came back: %v", tb2.Volumes())
	}
}
