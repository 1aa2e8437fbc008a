package volfs

import (
	"sync"

	"github.com/rwxnfs/rwxnfs/pkg/exports"
)

// dirCommits runs directory fsyncs so that concurrent namespace changes
// to one directory share one (group commit). The rule that keeps it
// honest: a change is covered only by an fsync that started after the
// change was made. A caller arriving while its directory's fsync is in
// progress therefore never joins it: it joins the batch of the next
// fsync, which starts when the current one ends, and the first caller of
// that batch runs it. At most one fsync per directory runs at a time,
// and a caller that finds none running starts its own at once: a lone
// call costs one fsync and waits for nothing else, as without grouping.
//
// Each batch carries the error of its own fsync, and every caller in it
// gets that error: a failed fsync is never reported as success to a
// caller it covered, whatever later fsyncs of the directory return.
//
// Directories are keyed by handle, not node: one directory can be
// resolved to two nodes when the cache evicted the first (see sameNode).
type dirCommits struct {
	// fsync makes a directory durable: fsyncDir, or a test's hook.
	fsync func(*exports.Node) error

	mu   sync.Mutex
	dirs map[string]*dirCommit // by handle; present while a caller is in commit
}

// dirCommit is one directory's state (guarded by dirCommits.mu).
type dirCommit struct {
	running *commitBatch // its fsync is in progress (nil: none)
	next    *commitBatch // changes made after running's fsync began (nil: none)
	users   int          // callers in commit; the entry goes at zero
}

// commitBatch is the callers that one fsync covers.
type commitBatch struct {
	start chan struct{} // a next batch's: closed when its fsync may begin
	done  chan struct{} // closed when its fsync returned; err is then set
	err   error
	size  int // callers in the batch
}

func newDirCommits(fsync func(*exports.Node) error) *dirCommits {
	return &dirCommits{fsync: fsync, dirs: make(map[string]*dirCommit)}
}

// commit returns once an fsync of dir that started after the call began
// has returned, with that fsync's error. The caller has made its change
// before calling.
func (c *dirCommits) commit(dir *exports.Node) error {
	c.mu.Lock()
	d := c.dirs[string(dir.Handle)]
	if d == nil {
		d = &dirCommit{}
		c.dirs[string(dir.Handle)] = d
	}
	d.users++
	b, lead := d.running, true
	switch {
	case b == nil:
		b = &commitBatch{done: make(chan struct{})}
		d.running = b
	case d.next == nil:
		// An fsync is in progress and may have begun before this
		// change: lead the next one, after it.
		b = &commitBatch{start: make(chan struct{}), done: make(chan struct{})}
		d.next = b
	default:
		b, lead = d.next, false
	}
	b.size++
	c.mu.Unlock()

	if lead {
		if b.start != nil {
			<-b.start
		}
		// Every caller in b joined before this point, after its change.
		err := c.fsync(dir)
		c.mu.Lock()
		b.err = err
		close(b.done)
		d.running, d.next = d.next, nil
		if d.running != nil {
			close(d.running.start)
		}
	} else {
		<-b.done
		c.mu.Lock()
	}
	if d.users--; d.users == 0 {
		delete(c.dirs, string(dir.Handle))
	}
	c.mu.Unlock()
	return b.err
}

// queued reports how many callers wait for the next fsync of the
// directory with handle h (tests use it to know a batch has formed).
func (c *dirCommits) queued(h []byte) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d := c.dirs[string(h)]; d != nil && d.next != nil {
		return d.next.size
	}
	return 0
}
