package exports

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rwxnfs/rwxnfs/internal/atomicfile"
	"github.com/rwxnfs/rwxnfs/pkg/quota"
)

// Snapshot is a copy of a volume's tree, taken in the background.
type Snapshot struct {
	ID      string      `json:"id"`
	Source  string      `json:"sourceVolume"`
	Created time.Time   `json:"created"` // when it was asked for
	Usage   quota.Usage `json:"usage"`   // of the copy, once ready
	// Pending is true until the copy is complete; Error says why the
	// last attempt failed (a repeated CreateSnapshot retries).
	Pending bool   `json:"pending,omitempty"`
	Error   string `json:"error,omitempty"`
}

// The snapshot store: each snapshot's metadata is a file,
// state/snapshots/<id>.json, and its tree is SnapshotDir(id).

// saveSnapMeta writes a snapshot's metadata file.
func (t *Table) saveSnapMeta(s *Snapshot) error {
	data, _ := json.MarshalIndent(s, "", "  ")
	return atomicfile.Write(filepath.Join(t.snapMetaDir(), s.ID+".json"), data, 0o600)
}

// snapshot reads a snapshot's metadata (KindNotFound if there is none).
func (t *Table) snapshot(id string) (*Snapshot, error) {
	data, err := os.ReadFile(filepath.Join(t.snapMetaDir(), id+".json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errorf(KindNotFound, "snapshot %s not found", id)
	}
	if err != nil {
		return nil, err
	}
	var s Snapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("snapshot metadata %s: %w", id, err)
	}
	return &s, nil
}

// Snapshot returns a snapshot by id.
func (t *Table) Snapshot(id string) (*Snapshot, error) {
	if err := ValidateID(id); err != nil {
		return nil, errorf(KindNotFound, "snapshot %s not found", id)
	}
	return t.snapshot(id)
}

// Snapshots lists snapshots, of one source volume if source is not "".
func (t *Table) Snapshots(source string) ([]*Snapshot, error) {
	ents, err := os.ReadDir(t.snapMetaDir())
	if err != nil {
		return nil, err
	}
	var out []*Snapshot
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(id, ".") {
			continue
		}
		s, err := t.snapshot(id)
		if err != nil {
			continue
		}
		if source == "" || s.Source == source {
			out = append(out, s)
		}
	}
	return out, nil
}
