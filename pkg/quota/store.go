package quota

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/rwxnfs/rwxnfs/internal/atomicfile"
)

// Store is where volumes' usage is saved: one file per volume,
// <dir>/<id>.json. This package is the only writer of those files:
// callers make, open and remove a volume's usage through the Store and
// its accountant, never by path.
type Store struct {
	dir string
}

// OpenStore opens (making it if needed) the directory usage is saved in.
func OpenStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return &Store{dir: dir}, nil
}

func (s *Store) path(id string) string { return filepath.Join(s.dir, id+".json") }

// Open returns the accountant of an existing volume, with the usage
// saved for it (none saved: zero, until a reconcile walk counts it).
func (s *Store) Open(id string, lim Limits) (*Volume, error) {
	return New(s.path(id), lim)
}

// Create returns the accountant of a new volume that holds u, and has
// saved u (replacing whatever was saved under id) before it returns, so
// that the volume's first start already enforces its limits on it.
func (s *Store) Create(id string, lim Limits, u Usage) (*Volume, error) {
	v := &Volume{path: s.path(id), used: u, ceil: u, dirty: true}
	v.SetLimits(lim)
	if err := v.Flush(); err != nil {
		return nil, err
	}
	return v, nil
}

// Remove deletes the usage saved for id, for a volume that is gone or
// was never made; removing what is not there succeeds. A served volume's
// accountant must be retired first (Volume.Retire), so that no save of
// it brings the file back.
func (s *Store) Remove(id string) error {
	if err := os.Remove(s.path(id)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	return atomicfile.SyncDir(s.dir)
}
