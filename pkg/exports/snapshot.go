package exports

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/rwxnfs/rwxnfs/internal/atomicfile"
	"github.com/rwxnfs/rwxnfs/pkg/quota"
)

// Snapshots are taken in the background. CreateSnapshot records the
// snapshot (metadata with Pending set, and a "snapshot" intent) and
// starts a job that copies the volume into ROOT/snapshots/.staging-<id>;
// when the copy is complete and synced the job writes the final
// metadata (Pending cleared, usage) and renames the tree into place.
// The intent stays until then, so a crash or a shutdown mid-copy leaves
// it for the next start, which copies again from the beginning
// (recoverSnapshot). A failed copy is recorded in the metadata (Error)
// and retried by a repeated CreateSnapshot.

// CreateSnapshot records a snapshot of a volume and starts copying it;
// the returned snapshot is Pending until the copy is done. The copy is
// taken while the volume is served: each file is copied as it is when
// read, so the snapshot is crash-consistent per file at best (a file
// being written may be caught half-written; files are not consistent
// with each other). Idempotent: the same id and source return the
// existing snapshot, restarting its copy if the last attempt failed.
func (t *Table) CreateSnapshot(id, source string) (*Snapshot, bool, error) {
	if err := ValidateID(id); err != nil {
		return nil, false, errorf(KindInvalid, "%v", err)
	}
	t.opMu.Lock()
	defer t.opMu.Unlock()
	if s, err := t.snapshot(id); err == nil {
		if s.Source != source {
			return nil, false, errorf(KindExists, "snapshot %s exists for volume %s", id, s.Source)
		}
		if s.Pending && s.Error != "" && t.jobs.snapshots[id] == nil {
			v, ok := t.Volume(source)
			if !ok {
				return nil, false, errorf(KindNotFound, "source volume %s not found", source)
			}
			t.log.Info("retrying a failed snapshot", "snapshot", id, "volume", source, "lastError", s.Error)
			s.Error = ""
			if err := t.beginSnapshot(s); err != nil {
				return nil, false, err
			}
			t.startSnapshot(s, v)
		}
		return s, true, nil
	}
	v, ok := t.Volume(source)
	if !ok {
		return nil, false, errorf(KindNotFound, "source volume %s not found", source)
	}
	if err := os.MkdirAll(t.snapshotsDir(), 0o700); err != nil {
		return nil, false, err
	}
	s := &Snapshot{ID: id, Source: source, Created: time.Now().UTC(), Pending: true}
	if err := t.beginSnapshot(s); err != nil {
		return nil, false, err
	}
	t.step("snapshot:intent")
	t.startSnapshot(s, v)
	t.log.Info("snapshot requested; copying", "snapshot", id, "volume", source, "bytes", v.Quota.Usage().Bytes)
	return s, false, nil
}

// beginSnapshot writes the intent, then the pending metadata.
func (t *Table) beginSnapshot(s *Snapshot) error {
	if err := t.beginIntent(intent{Op: "snapshot", ID: s.ID}); err != nil {
		return err
	}
	return t.saveSnapMeta(s)
}

// startSnapshot starts the copy job of a pending snapshot. t.opMu is held.
func (t *Table) startSnapshot(s *Snapshot, v *Volume) {
	key := "volume/" + v.ID
	j, ctx := t.jobs.begin(t.jobs.snapshots, s.ID, key, v.Quota.Usage().Bytes)
	snap := *s
	go func() {
		defer t.jobs.wg.Done()
		defer close(j.done)
		defer j.cancel()
		usage, err := t.copySnapshot(ctx, j, &snap, v.Dir())
		t.opMu.Lock()
		defer t.opMu.Unlock()
		t.jobs.end(t.jobs.snapshots, snap.ID, key)
		if ctx.Err() != nil {
			// Cancelled: by DeleteSnapshot, which removes everything, or
			// by Close, and the next start copies again.
			j.err = ctx.Err()
			return
		}
		if err == nil {
			err = t.commitSnapshot(&snap, usage)
		}
		if err != nil {
			j.err = err
			t.failSnapshot(&snap, err)
		}
	}()
}

// copySnapshot copies the source tree into the snapshot's staging tree.
func (t *Table) copySnapshot(ctx context.Context, j *job, s *Snapshot, src string) (quota.Usage, error) {
	staging := t.stagingDir("snapshot", s.ID)
	os.RemoveAll(staging)
	if err := os.Mkdir(staging, 0o700); err != nil {
		return quota.Usage{}, err
	}
	start := time.Now()
	usage, err := t.copyInto(ctx, j, src, staging)
	if err != nil {
		return usage, fmt.Errorf("copying volume %s: %w", s.Source, err)
	}
	t.log.Info("snapshot copied", "snapshot", s.ID, "volume", s.Source, "bytes", usage.Bytes, "inodes", usage.Inodes, "took", time.Since(start).Round(time.Millisecond))
	t.step("snapshot:copied")
	return usage, nil
}

// commitSnapshot marks a copied snapshot ready, then renames its tree
// into place and drops the intent. t.opMu is held.
func (t *Table) commitSnapshot(s *Snapshot, usage quota.Usage) error {
	s.Pending, s.Error, s.Usage = false, "", usage
	if err := t.saveSnapMeta(s); err != nil {
		return err
	}
	t.step("snapshot:meta")
	if err := t.placeSnapshot(s.ID); err != nil {
		return err
	}
	t.log.Info("snapshot ready", "snapshot", s.ID, "volume", s.Source)
	return nil
}

func (t *Table) placeSnapshot(id string) error {
	if err := os.Rename(t.stagingDir("snapshot", id), t.SnapshotDir(id)); err != nil {
		return err
	}
	atomicfile.SyncDir(t.snapshotsDir())
	return t.commitIntent(intent{Op: "snapshot", ID: id})
}

// failSnapshot records why a copy failed and clears what it left; a
// repeated CreateSnapshot retries. t.opMu is held.
func (t *Table) failSnapshot(s *Snapshot, cause error) {
	t.log.Error("snapshot copy failed; a repeated CreateSnapshot retries it", "snapshot", s.ID, "volume", s.Source, "err", cause)
	os.RemoveAll(t.stagingDir("snapshot", s.ID))
	s.Pending, s.Error = true, cause.Error()
	if err := t.saveSnapMeta(s); err != nil {
		t.log.Error("recording a failed snapshot", "snapshot", s.ID, "err", err)
		return
	}
	t.commitIntent(intent{Op: "snapshot", ID: s.ID})
}

// recoverSnapshot settles a snapshot intent found at start: a placed
// tree is done; a ready record with its staging tree is placed; a
// pending one is copied again (again = true, the intent stays); one
// without a record never started and is rolled back.
func (t *Table) recoverSnapshot(in intent) (again bool, err error) {
	if _, err := os.Lstat(t.SnapshotDir(in.ID)); err == nil {
		return false, t.commitIntent(in)
	}
	s, err := t.snapshot(in.ID)
	if KindOf(err) == KindNotFound {
		if err := os.RemoveAll(t.stagingDir("snapshot", in.ID)); err != nil {
			return false, err
		}
		return false, t.commitIntent(in)
	}
	if err != nil {
		return false, err
	}
	if !s.Pending {
		if _, err := os.Lstat(t.stagingDir("snapshot", in.ID)); err == nil {
			return false, t.placeSnapshot(in.ID)
		}
		s.Pending = true // ready but no tree: copy again
		if err := t.saveSnapMeta(s); err != nil {
			return false, err
		}
	}
	return true, os.RemoveAll(t.stagingDir("snapshot", in.ID))
}

// resumeSnapshots starts the copies of snapshots interrupted by a crash
// or shutdown, now that their source volumes are loaded.
func (t *Table) resumeSnapshots(ids []string) {
	t.opMu.Lock()
	defer t.opMu.Unlock()
	for _, id := range ids {
		s, err := t.snapshot(id)
		if err != nil {
			t.log.Error("resuming a snapshot", "snapshot", id, "err", err)
			continue
		}
		v, ok := t.Volume(s.Source)
		if !ok {
			t.failSnapshot(s, fmt.Errorf("source volume %s is gone", s.Source))
			continue
		}
		t.startSnapshot(s, v)
	}
}

// DeleteSnapshot removes a snapshot; volumes made from it are unaffected
// (they are copies). A copy in progress is cancelled first. A snapshot
// being restored from is KindPrecondition until the restore ends.
func (t *Table) DeleteSnapshot(id string) error {
	if err := ValidateID(id); err != nil {
		return errorf(KindInvalid, "%v", err)
	}
	t.opMu.Lock()
	defer t.opMu.Unlock()
	for {
		if n := t.jobs.reading["snapshot/"+id]; n > 0 {
			return errorf(KindPrecondition, "snapshot %s is being restored into %d volumes; retry when they are made", id, n)
		}
		j := t.jobs.snapshots[id]
		if j == nil {
			break
		}
		j.cancel()
		t.opMu.Unlock()
		<-j.done
		t.opMu.Lock()
	}
	if _, err := t.snapshot(id); err != nil {
		return err
	}
	in := intent{Op: "snapdelete", ID: id, Target: filepath.Join(t.snapshotsDir(), ".trash-"+id+"-"+strconv.FormatInt(time.Now().UnixNano(), 10))}
	if err := t.beginIntent(in); err != nil {
		return err
	}
	if err := t.finishSnapDelete(in); err != nil {
		return err
	}
	t.log.Info("snapshot deleted", "snapshot", id)
	return nil
}

func (t *Table) finishSnapDelete(in intent) error {
	if err := moveAside(t.SnapshotDir(in.ID), in.Target); err != nil {
		return err
	}
	t.step("snapdelete:renamed")
	if err := os.Remove(filepath.Join(t.snapMetaDir(), in.ID+".json")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, d := range []string{in.Target, t.stagingDir("snapshot", in.ID)} {
		if err := os.RemoveAll(d); err != nil {
			return err
		}
	}
	return t.commitIntent(in)
}
