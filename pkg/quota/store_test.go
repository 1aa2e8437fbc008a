package quota

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// The store makes, reloads and removes a volume's saved usage, and a
// retired accountant never brings a removed file back.
func TestStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "usage")
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	// A new volume's usage is on disk before Create returns.
	v, err := s.Create("a", Limits{Bytes: 100}, Usage{Bytes: 40, Inodes: 2})
	if err != nil {
		t.Fatal(err)
	}
	if v.Usage() != (Usage{40, 2}) || v.Limits() != (Limits{Bytes: 100}) {
		t.Fatalf("created %+v limits %+v", v.Usage(), v.Limits())
	}
	w, err := s.Open("a", Limits{Inodes: 5})
	if err != nil || w.Usage() != (Usage{40, 2}) || w.Limits() != (Limits{Inodes: 5}) {
		t.Fatalf("reopened %+v limits %+v %v", w.Usage(), w.Limits(), err)
	}
	// Create replaces what was saved under the id.
	if _, err := s.Create("a", Limits{}, Usage{}); err != nil {
		t.Fatal(err)
	}
	if w, _ := s.Open("a", Limits{}); w.Usage() != (Usage{}) {
		t.Fatalf("re-created volume kept old usage %+v", w.Usage())
	}
	// Nothing saved: zero.
	if n, err := s.Open("none", Limits{}); err != nil || n.Usage() != (Usage{}) {
		t.Fatalf("unsaved volume %+v %v", n.Usage(), err)
	}
	// Retire, then remove: later changes and saves write nothing.
	v.Add(1, 1)
	v.Retire()
	if err := s.Remove("a"); err != nil {
		t.Fatal(err)
	}
	v.Add(1, 1)
	if err := v.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a removed volume's usage file is back: %v", err)
	}
	if err := s.Remove("a"); err != nil {
		t.Fatalf("removing twice: %v", err)
	}
	// A corrupt file is an error, not a silent zero.
	os.WriteFile(filepath.Join(dir, "bad.json"), []byte("{"), 0o600)
	if _, err := s.Open("bad", Limits{}); err == nil {
		t.Fatal("a corrupt usage file opened")
	}
}
