package exports

import (
	"os"
	"path/filepath"
	"time"

	"github.com/rwxnfs/rwxnfs/internal/atomicfile"
)

// DeleteResult says where a deleted volume's data went.
type DeleteResult struct {
	Path string // retained or archived tree; "" when deleted
}

// DeleteVolume unexports a volume and reclaims it per mode ("": the mode
// stored with the volume). Clients still holding its handles get
// NFS3ERR_STALE: its fsid is no longer known. A volume that a copy reads
// is KindPrecondition until the copy ends; one being made is KindAborted.
func (t *Table) DeleteVolume(id string, mode ReclaimMode) (DeleteResult, error) {
	if mode != "" {
		if err := mode.check(); err != nil {
			return DeleteResult{}, err
		}
	}
	if err := ValidateID(id); err != nil {
		return DeleteResult{}, errorf(KindInvalid, "%v", err)
	}
	t.opMu.Lock()
	defer t.opMu.Unlock()
	if t.jobs.creating[id] != nil {
		return DeleteResult{}, errorf(KindAborted, "volume %s is still being created (copied from its source); retry when that ends", id)
	}
	v, ok := t.Volume(id)
	if !ok {
		return DeleteResult{}, errorf(KindNotFound, "volume %s not found", id)
	}
	if n := t.jobs.reading["volume/"+id]; n > 0 {
		return DeleteResult{}, errorf(KindPrecondition, "volume %s is the source of %d copies in progress (snapshots or clones); retry when they are done", id, n)
	}
	if mode == "" {
		mode = v.reclaim()
	}
	stamp := time.Now().UTC().Format("20060102T150405.000000000Z")
	in := intent{Op: "delete", ID: id, Mode: mode}
	switch mode {
	case ReclaimDelete:
		in.Target = filepath.Join(t.volumesDir(), ".trash-"+id+"-"+stamp)
	case ReclaimRetain:
		in.Target = filepath.Join(t.retainedDir(), id)
		if _, err := os.Lstat(in.Target); err == nil {
			in.Target += "-" + stamp
		}
	case ReclaimArchive:
		in.Target = filepath.Join(t.archiveDir(), id+"-"+stamp)
	}
	if err := os.MkdirAll(filepath.Dir(in.Target), 0o700); err != nil {
		return DeleteResult{}, err
	}
	if err := t.beginIntent(in); err != nil {
		return DeleteResult{}, err
	}
	t.step("delete:intent")
	t.detach(v)
	if err := t.finishDelete(in); err != nil {
		return DeleteResult{}, err
	}
	t.log.Info("volume deleted", "volume", id, "reclaim", mode, "path", in.Target)
	if mode == ReclaimDelete {
		return DeleteResult{}, nil
	}
	return DeleteResult{Path: in.Target}, nil
}

// finishDelete runs (or, in recovery, re-runs) a deletion's steps; each
// is idempotent.
func (t *Table) finishDelete(in intent) error {
	if err := moveAside(filepath.Join(t.volumesDir(), in.ID), in.Target); err != nil {
		return err
	}
	t.step("delete:renamed")
	meta := filepath.Join(t.metaDir(), in.ID+".json")
	if in.Mode != ReclaimDelete {
		// Keep the metadata beside the data, to re-import it by hand.
		if data, err := os.ReadFile(meta); err == nil {
			if err := atomicfile.Write(in.Target+".json", data, 0o600); err != nil {
				return err
			}
		}
	}
	if err := t.removeMeta(in.ID); err != nil {
		return err
	}
	t.step("delete:meta")
	if in.Mode == ReclaimDelete {
		if err := os.RemoveAll(in.Target); err != nil {
			return err
		}
	}
	return t.commitIntent(in)
}
