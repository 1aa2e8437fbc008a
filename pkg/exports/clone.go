package exports

import (
	"context"
	"fmt"

	"github.com/rwxnfs/rwxnfs/pkg/quota"
)

// startClone checks a content source and starts the job copying it into
// a new volume. t.opMu is held.
func (t *Table) startClone(req CreateRequest, lim quota.Limits) (*job, error) {
	var src, key string
	var srcUsage quota.Usage
	if s := req.Source; s.Snapshot != "" {
		snap, err := t.snapshot(s.Snapshot)
		if err != nil {
			return nil, err
		}
		if snap.Pending {
			return nil, errorf(KindPrecondition, "snapshot %s is not ready yet (its copy is still running); retry when it is ready", snap.ID)
		}
		src, srcUsage, key = t.SnapshotDir(snap.ID), snap.Usage, "snapshot/"+snap.ID
	} else {
		sv, ok := t.Volume(s.Volume)
		if !ok {
			return nil, errorf(KindNotFound, "source volume %s not found", s.Volume)
		}
		src, srcUsage, key = sv.Dir(), sv.Quota.Usage(), "volume/"+sv.ID
	}
	if lim.Bytes > 0 && srcUsage.Bytes > lim.Bytes {
		return nil, errorf(KindOutOfRange, "the source holds %d bytes, more than the requested capacity %d", srcUsage.Bytes, lim.Bytes)
	}
	if lim.Inodes > 0 && srcUsage.Inodes > lim.Inodes {
		return nil, errorf(KindOutOfRange, "the source holds %d inodes, more than the requested inode limit %d", srcUsage.Inodes, lim.Inodes)
	}
	in, err := t.beginCreate(req.ID)
	if err != nil {
		return nil, err
	}
	j, ctx := t.jobs.begin(t.jobs.creating, req.ID, key, max(srcUsage.Bytes, lim.Bytes))
	j.req = req
	go func() {
		defer t.jobs.wg.Done()
		_, err := t.build(in, req, lim, func(staging string) (quota.Usage, error) {
			usage, err := t.copyInto(ctx, j, src, staging)
			if err != nil {
				return usage, fmt.Errorf("copying %s: %w", sourceString(req.Source), err)
			}
			return usage, nil
		})
		if err != nil {
			t.log.Error("volume copy failed", "volume", req.ID, "source", sourceString(req.Source), "err", err)
		}
		t.opMu.Lock()
		t.jobs.end(t.jobs.creating, req.ID, key)
		t.opMu.Unlock()
		j.err = err
		j.cancel()
		close(j.done)
	}()
	return j, nil
}

// awaitClone waits for a clone job, then answers req as a create (or a
// repeat) of what the job made.
func (t *Table) awaitClone(ctx context.Context, j *job, req CreateRequest, repeat bool) (*Volume, bool, error) {
	select {
	case <-j.done:
	case <-ctx.Done():
		return nil, false, errorf(KindAborted, "volume %s is still being copied from %s; repeat the request to wait for it", req.ID, sourceString(j.req.Source))
	}
	if j.err != nil {
		return nil, false, j.err
	}
	v, ok := t.Volume(req.ID)
	if !ok {
		return nil, false, errorf(KindAborted, "volume %s went away right after it was made; repeat the request", req.ID)
	}
	if repeat {
		return repeatOf(v, req)
	}
	return v, false, nil
}
