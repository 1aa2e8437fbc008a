// Package atomicfile replaces small state files (metadata, usage, NSM
// records, keys) so that after a crash a path holds either its old
// contents or all of the new ones, never a mix or nothing.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write makes path hold data with mode perm: it writes a temporary file
// beside path (named .tmp-<name>-*, which readers of the directory
// skip), fsyncs it, renames it over path and fsyncs the directory, so
// the rename itself survives a crash too.
func Write(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // fails harmlessly once renamed
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a directory, making the creations, renames and removals
// of its entries durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
