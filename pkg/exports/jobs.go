package exports

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/rwxnfs/rwxnfs/pkg/quota"
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
	source  string // "volume/<id>" or "snapshot/<id>"
}

// CopyProgress is a copy in progress: a snapshot being taken or a volume
// being cloned from a volume or snapshot.
type CopyProgress struct {
	Kind     string // "snapshot" or "volume": what is being made
	ID       string
	Source   string // "volume/<id>" or "snapshot/<id>"
	Written  int64  // bytes copied so far
	Expected int64  // bytes the copy is expected to write (the source's usage then)
}

// Copies lists the copies in progress.
func (t *Table) Copies() []CopyProgress {
	t.opMu.Lock()
	defer t.opMu.Unlock()
	var out []CopyProgress
	for kind, set := range map[string]map[string]*job{"snapshot": t.jobs.snapshots, "volume": t.jobs.creating} {
		for id, j := range set {
			out = append(out, CopyProgress{Kind: kind, ID: id, Source: j.source, Written: j.written.Load(), Expected: j.expect})
		}
	}
	slices.SortFunc(out, func(a, b CopyProgress) int { return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.ID, b.ID)) })
	return out
}

func (js *jobs) init() {
	js.ctx, js.cancel = context.WithCancel(context.Background())
	js.creating = make(map[string]*job)
	js.snapshots = make(map[string]*job)
	js.reading = make(map[string]int)
}

// begin registers a copy job, as set[id], that reads the source key
// ("volume/<id>" or "snapshot/<id>"), and returns it with its context
// (cancelled by j.cancel and by Close). Its goroutine must call end,
// then wg.Done. Table.opMu is held.
func (js *jobs) begin(set map[string]*job, id, key string, expect int64) (*job, context.Context) {
	ctx, cancel := context.WithCancel(js.ctx)
	j := &job{cancel: cancel, done: make(chan struct{}), expect: expect, source: key}
	set[id] = j
	js.reading[key]++
	js.wg.Add(1)
	return j, ctx
}

// end unregisters what begin registered. Table.opMu is held.
func (js *jobs) end(set map[string]*job, id, key string) {
	delete(set, id)
	if js.reading[key]--; js.reading[key] == 0 {
		delete(js.reading, key)
	}
}

// stop cancels every copy and waits for them to return. Interrupted
// snapshots keep their intent records and resume at the next start;
// interrupted clones are rolled back.
func (js *jobs) stop() {
	if js.cancel != nil {
		js.cancel()
		js.wg.Wait()
	}
}

// copyInto copies the tree src into staging for job j (its progress,
// the tests' copy hook) and syncs it, so that the copy is on disk before
// the rename that commits it.
func (t *Table) copyInto(ctx context.Context, j *job, src, staging string) (quota.Usage, error) {
	usage, err := copyTree(copyJob{ctx: ctx, progress: &j.written, hook: t.copyHook}, src, staging)
	if err != nil {
		return usage, err
	}
	return usage, syncFS(staging)
}
