package exports

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/rwxnfs/rwxnfs/internal/atomicfile"
)

// The intent journal: crash safety of the lifecycle operations that take
// more than one step on disk (create.go, clone.go, delete.go,
// snapshot.go). Each is an intent record (state/intents/*.json, written
// atomically) → steps → commit (removing the record). Each step is
// idempotent, and the record says everything needed to finish or undo
// it, so Open, before it loads volumes, completes or rolls back whatever
// a crash interrupted (recoverIntents). Creations roll back unless their
// commit point (the rename of the fully built staging directory into
// place) was passed; deletions, once recorded, roll forward. Staging and
// trash directories live beside the volumes (same file system, so
// renames are atomic) with names a volume id cannot have (leading dot),
// so they are never exported.

// intent is a recorded multi-step operation.
type intent struct {
	Op     string      `json:"op"` // create, delete, snapshot, snapdelete
	ID     string      `json:"id"`
	Mode   ReclaimMode `json:"mode,omitempty"`
	Target string      `json:"target,omitempty"` // where a deleted tree goes
}

func (t *Table) intentPath(in intent) string {
	kind := "volume"
	if strings.HasPrefix(in.Op, "snap") {
		kind = "snapshot"
	}
	return filepath.Join(t.intentsDir(), kind+"-"+in.ID+".json")
}

func (t *Table) beginIntent(in intent) error {
	data, _ := json.Marshal(in)
	return atomicfile.Write(t.intentPath(in), data, 0o600)
}

func (t *Table) commitIntent(in intent) error {
	if err := os.Remove(t.intentPath(in)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return atomicfile.SyncDir(t.intentsDir())
}

// moveAside renames a tree that is being deleted to where its intent
// record says, unless an earlier run of the same step already did (so
// recovery can run it again), and syncs the directories involved.
func moveAside(from, to string) error {
	if _, err := os.Lstat(from); err != nil {
		return nil
	}
	if err := os.Rename(from, to); err != nil {
		return err
	}
	atomicfile.SyncDir(filepath.Dir(from))
	if filepath.Dir(to) != filepath.Dir(from) {
		atomicfile.SyncDir(filepath.Dir(to))
	}
	return nil
}

// step marks a named step of a multi-step operation (say
// "create:meta"). It does nothing unless Config.stepHook is set: tests
// set it to kill the process there and check that recovery finishes or
// undoes the operation, at every step.
func (t *Table) step(name string) {
	if t.stepHook != nil {
		t.stepHook(name)
	}
}

// recoverIntents finishes or undoes the operations a crash interrupted.
// It runs in Open before volumes are loaded, so nothing half-made is ever
// exported. It returns the snapshots whose copies must start over once
// the volumes are loaded.
func (t *Table) recoverIntents() (resume []string, err error) {
	for _, d := range []string{t.intentsDir(), t.snapMetaDir(), t.snapshotsDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	ents, err := os.ReadDir(t.intentsDir())
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(t.intentsDir(), e.Name()))
		if err != nil {
			return nil, err
		}
		var in intent
		if err := json.Unmarshal(data, &in); err != nil || ValidateID(in.ID) != nil {
			return nil, fmt.Errorf("intent record %s is unreadable (%v): inspect and remove it", e.Name(), err)
		}
		again := false
		switch in.Op {
		case "create":
			err = t.rollbackCreate(in)
		case "delete":
			err = t.finishDelete(in)
		case "snapshot":
			again, err = t.recoverSnapshot(in)
		case "snapdelete":
			err = t.finishSnapDelete(in)
		default:
			err = fmt.Errorf("unknown operation %q", in.Op)
		}
		if err != nil {
			return nil, fmt.Errorf("recovering %s: %w", e.Name(), err)
		}
		if again {
			resume = append(resume, in.ID)
			t.log.Warn("a snapshot copy was interrupted; it starts over", "snapshot", in.ID)
			continue
		}
		t.log.Warn("recovered an operation interrupted by a crash", "op", in.Op, "id", in.ID, "target", in.Target)
	}
	return resume, nil
}
