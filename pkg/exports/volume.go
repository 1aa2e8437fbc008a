package exports

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/rwxnfs/rwxnfs/internal/atomicfile"
	"github.com/rwxnfs/rwxnfs/pkg/quota"
)

// Volume is one exported directory.
type Volume struct {
	ID      string    `json:"id"`
	FSID    uint64    `json:"fsid"`
	Created time.Time `json:"created"`
	Options Options   `json:"options"`
	// Quota accounts the volume's usage and holds its limits, the only
	// copy of them while the volume is served (see Limits).
	Quota *quota.Volume `json:"-"`
	// RootAttrs and Source are what the volume was created with, kept
	// so a repeated CreateVolume can be recognised as the same request.
	RootAttrs RootAttrs `json:"root"`
	Source    *Source   `json:"source,omitempty"`
	// Name is what its creator calls it (CSI: the PV name) if not ID.
	Name string `json:"name,omitempty"`
	// Reclaim is what deleting it does unless the caller says ("": delete).
	Reclaim ReclaimMode `json:"reclaim,omitempty"`

	dir  string
	root *Node // pinned: never evicted
}

// Limits returns the volume's limits (zero: none). They are its
// accountant's, which every UpdateVolume and ExpandVolume sets and every
// reservation reads: a record replaced by UpdateVolume shares the
// accountant, so old and new records never disagree.
func (v *Volume) Limits() quota.Limits {
	if v.Quota == nil {
		return quota.Limits{}
	}
	return v.Quota.Limits()
}

// Dir returns the volume's directory on the server.
func (v *Volume) Dir() string { return v.dir }

// Path returns the path clients mount.
func (v *Volume) Path() string { return "/volumes/" + v.ID }

// Root returns the volume's root directory node.
func (v *Volume) Root() *Node { return v.root }

// name is what the creator calls the volume ("" in old metadata: its id).
func (v *Volume) name() string {
	if v.Name != "" {
		return v.Name
	}
	return v.ID
}

// reclaim is what deleting the volume does unless the caller says.
func (v *Volume) reclaim() ReclaimMode {
	if v.Reclaim == "" {
		return ReclaimDelete
	}
	return v.Reclaim
}

// RootAttrs are the owner and mode given to a new volume's root.
type RootAttrs struct {
	UID  uint32 `json:"uid"`
	GID  uint32 `json:"gid"`
	Mode uint32 `json:"mode"` // permission bits; 0 means 0777
}

// Source is what a volume's content is copied from: one of a snapshot or
// a volume.
type Source struct {
	Snapshot string `json:"snapshot,omitempty"`
	Volume   string `json:"volume,omitempty"`
}

func sourceString(s *Source) string {
	switch {
	case s == nil:
		return "none"
	case s.Snapshot != "":
		return "snapshot " + s.Snapshot
	}
	return "volume " + s.Volume
}

// ReclaimMode says what deleting a volume does with its data.
type ReclaimMode string

// Reclaim modes.
const (
	ReclaimDelete  ReclaimMode = "delete"  // remove the tree
	ReclaimRetain  ReclaimMode = "retain"  // unexport, keep the tree in ROOT/retained
	ReclaimArchive ReclaimMode = "archive" // unexport, move to ROOT/archive/<id>-<time>
)

// check refuses (KindInvalid) anything but one of the reclaim modes.
func (m ReclaimMode) check() error {
	switch m {
	case ReclaimDelete, ReclaimRetain, ReclaimArchive:
		return nil
	}
	return errorf(KindInvalid, "reclaim mode must be delete, retain or archive, not %q", m)
}

var validID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ValidateID checks a volume id: 1-128 of [A-Za-z0-9._-], not starting
// with a dot or dash, so it is always a single, visible path component.
func ValidateID(id string) error {
	if !validID.MatchString(id) {
		return fmt.Errorf("invalid volume id %q: want 1-128 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit", id)
	}
	return nil
}

// volumeMeta is a volume's metadata file, state/volumes/<id>.json: the
// record and its limits, which are kept on disk here and in memory only
// in the accountant.
type volumeMeta struct {
	Volume
	Limits quota.Limits `json:"limits"`
}

// saveMeta writes a volume's metadata file, with limits lim.
func (t *Table) saveMeta(v *Volume, lim quota.Limits) error {
	data, err := json.MarshalIndent(volumeMeta{Volume: *v, Limits: lim}, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(t.metaDir(), v.ID+".json"), data, 0o600)
}

// removeMeta removes a volume's metadata and saved usage, if there.
func (t *Table) removeMeta(id string) error {
	if err := os.Remove(filepath.Join(t.metaDir(), id+".json")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	atomicfile.SyncDir(t.metaDir())
	return t.usage.Remove(id)
}
