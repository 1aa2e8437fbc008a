package secret

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPrivate(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "token")
	os.WriteFile(p, []byte("x"), 0o600)
	for mode, ok := range map[os.FileMode]bool{0o600: true, 0o400: true, 0o700: true, 0o640: false, 0o604: false, 0o620: false, 0o602: false, 0o644: false} {
		os.Chmod(p, mode)
		err := Private(p, "test secret")
		if ok != (err == nil) {
			t.Errorf("mode %04o: %v", mode, err)
		}
		if err != nil && !strings.Contains(err.Error(), "chmod 600 "+p) {
			t.Errorf("mode %04o: %v does not say what to run", mode, err)
		}
	}
	// Kubernetes mounts a secret as a symlink to the file: the file counts.
	os.Chmod(p, 0o644)
	link := filepath.Join(dir, "link")
	os.Symlink(p, link)
	if err := Private(link, "test secret"); err == nil {
		t.Error("a symlink to an open file passed")
	}
	if err := Private(filepath.Join(dir, "missing"), "test secret"); err == nil {
		t.Error("a missing file passed")
	}
}
