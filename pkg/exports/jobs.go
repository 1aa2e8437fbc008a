package exports

import (
	"context"
	"sync"
	"sync/atomic"
)

// jobs is the lifecycle's bookkeeping of copies, guarded by Table.opMu.
// The lock is held only for metadata steps, never across a copy: a long
// snapshot or clone must not stall other volumes' creates and deletes.
type jobs struct {
	ctx    context.Context // cancelled by Close: copies stop, the next start resumes
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// creating: volumes being copied into (clones, restores), by id.
	creating map[string]*job
	// snapshots being copied, by id.
	snapshots map[string]*job
	// reading: how many copies read a source ("volume/<id>" or
	// "snapshot/<id>"), which may not be deleted meanwhile.
	reading map[string]int
}

// job is one copy in progress.
type job struct {
	cancel  context.CancelFunc
	done    chan struct{} // closed when the job has finished
	err     error         // set before done closes
	req     CreateRequest // clones: what is being made
	expect  int64         // bytes the copy is expected to write
	written atomic.Int64
}

func (j *jobs) init() {
	j.ctx, j.cancel = context.WithCancel(context.Background())
	j.creating = make(map[string]*job)
	j.snapshots = make(map[string]*job)
	j.reading = make(map[string]int)
}

// stop cancels every copy and waits for them to return. Interrupted
// snapshots keep their intent records and resume at the next start;
// interrupted clones are rolled back.
func (j *jobs) stop() {
	if j.cancel != nil {
		j.cancel()
		j.wg.Wait()
	}
}
