package volfs

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rwxnfs/rwxnfs/internal/rpctest"
	"github.com/rwxnfs/rwxnfs/pkg/exports"
	"github.com/rwxnfs/rwxnfs/pkg/vfs"
)

// The group commit of directory fsyncs (groupcommit.go), tested through
// the namespace operations of a real FS over a real volume in a temporary
// directory. Every fsync goes through a recording hook that lists the
// directory as the fsync starts (what it covers: changes made before it
// began) and then runs the real fsync; a test may gate an fsync (hold it
// until a batch has queued behind it) or inject its error.

type gcEnv struct {
	t    *testing.T
	fs   *FS
	c    vfs.Caller
	root []byte // the volume's root directory

	// before, if set, runs in fsync number seq (from 0) after the listing
	// and before the real fsync; its error is the fsync's.
	before func(seq int) error

	mu       sync.Mutex
	started  int
	inflight map[string]int // fsyncs in progress per directory handle
	overlap  bool           // two fsyncs of one directory ran at once
	done     []fsyncRecord  // finished fsyncs, in the order they started
}

// fsyncRecord is a finished fsync: its directory, its number and the
// names the directory held when it began.
type fsyncRecord struct {
	seq   int
	dir   string
	names map[string]bool
	err   error
}

func newGCEnv(t *testing.T) *gcEnv {
	t.Helper()
	tbl, err := exports.Open(exports.Config{Root: t.TempDir(), Log: rpctest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tbl.Close() })
	v, err := tbl.Create("gc", exports.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	e := &gcEnv{
		t:        t,
		fs:       New(tbl, rpctest.Logger(t)),
		c:        vfs.Caller{Unix: true, UID: uint32(os.Geteuid()), GID: uint32(os.Getegid())},
		root:     v.Root().Handle,
		inflight: make(map[string]int),
	}
	e.fs.dirs.fsync = e.fsync
	return e
}

func (e *gcEnv) fsync(n *exports.Node) error {
	e.mu.Lock()
	seq := e.started
	e.started++
	key := string(n.Handle)
	if e.inflight[key]++; e.inflight[key] > 1 {
		e.overlap = true
	}
	before := e.before
	e.mu.Unlock()
	names := listDir(e.t, n)
	var err error
	if before != nil {
		err = before(seq)
	}
	if ferr := fsyncDir(n); err == nil {
		err = ferr
	}
	e.mu.Lock()
	e.inflight[key]--
	e.done = append(e.done, fsyncRecord{seq: seq, dir: key, names: names, err: err})
	e.mu.Unlock()
	return err
}

func listDir(t *testing.T, n *exports.Node) map[string]bool {
	fd, err := unix.Openat(n.FD(), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Error(err)
		return nil
	}
	f := os.NewFile(uintptr(fd), "dir")
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		t.Error(err)
	}
	m := make(map[string]bool, len(names))
	for _, s := range names {
		m[s] = true
	}
	return m
}

// finished returns the fsyncs finished so far.
func (e *gcEnv) finished() []fsyncRecord {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]fsyncRecord(nil), e.done...)
}

// coveredAfter returns the number of the first successful fsync of dir
// among recs, numbered after seq, whose listing satisfies ok; -1 if none.
func coveredAfter(recs []fsyncRecord, dir []byte, seq int, ok func(map[string]bool) bool) int {
	for _, r := range recs {
		if r.dir == string(dir) && r.seq > seq && r.err == nil && ok(r.names) {
			return r.seq
		}
	}
	return -1
}

func has(name string) func(map[string]bool) bool {
	return func(m map[string]bool) bool { return m[name] }
}

func lacks(name string) func(map[string]bool) bool {
	return func(m map[string]bool) bool { return !m[name] }
}

func (e *gcEnv) create(dir []byte, name string) error {
	_, err := e.fs.Create(context.Background(), e.c, dir, name, vfs.CreateArgs{Mode: vfs.Unchecked})
	return err
}

func (e *gcEnv) mkdir(dir []byte, name string) []byte {
	e.t.Helper()
	res, err := e.fs.Mkdir(context.Background(), e.c, dir, name, vfs.SetAttr{})
	if err != nil || !res.Found {
		e.t.Fatalf("MKDIR %s: %v (found %v)", name, err, res.Found)
	}
	return res.FH
}

// waitQueued waits until n callers wait for the next fsync of dir.
func (e *gcEnv) waitQueued(dir []byte, n int) {
	e.t.Helper()
	for end := time.Now().Add(time.Minute); e.fs.dirs.queued(dir) != n; time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			e.t.Fatalf("%d callers queued for the next fsync, want %d", e.fs.dirs.queued(dir), n)
		}
	}
}

// gate makes fsync number seq wait until the returned function is called.
func gate() (wait func(), release func()) {
	ch := make(chan struct{})
	return func() { <-ch }, func() { close(ch) }
}

// A lone call costs exactly one fsync of each directory it changed, and
// the fsync began after the change.
func TestGroupCommitLoneCall(t *testing.T) {
	e := newGCEnv(t)
	ctx := context.Background()
	sub := e.mkdir(e.root, "sub")
	ops := []struct {
		name string
		do   func() error
		dirs [][]byte
		ok   []func(map[string]bool) bool
	}{
		{"CREATE", func() error { return e.create(e.root, "a") }, [][]byte{e.root}, []func(map[string]bool) bool{has("a")}},
		{"RENAME in one directory", func() error {
			_, err := e.fs.Rename(ctx, e.c, e.root, "a", e.root, "b")
			return err
		}, [][]byte{e.root}, []func(map[string]bool) bool{func(m map[string]bool) bool { return m["b"] && !m["a"] }}},
		{"RENAME across directories", func() error {
			_, err := e.fs.Rename(ctx, e.c, e.root, "b", sub, "c")
			return err
		}, [][]byte{e.root, sub}, []func(map[string]bool) bool{lacks("b"), has("c")}},
		{"LINK", func() error {
			l, err := e.fs.Lookup(ctx, e.c, sub, "c")
			if err != nil {
				return err
			}
			_, err = e.fs.Link(ctx, e.c, l.FH, e.root, "d")
			return err
		}, [][]byte{e.root}, []func(map[string]bool) bool{has("d")}},
		{"REMOVE", func() error {
			_, err := e.fs.Remove(ctx, e.c, sub, "c")
			return err
		}, [][]byte{sub}, []func(map[string]bool) bool{lacks("c")}},
		{"SYMLINK", func() error {
			_, err := e.fs.Symlink(ctx, e.c, sub, "s", "target", vfs.SetAttr{})
			return err
		}, [][]byte{sub}, []func(map[string]bool) bool{has("s")}},
		{"MKDIR", func() error {
			_, err := e.fs.Mkdir(ctx, e.c, e.root, "m", vfs.SetAttr{})
			return err
		}, [][]byte{e.root}, []func(map[string]bool) bool{has("m")}},
		{"RMDIR", func() error {
			_, err := e.fs.Rmdir(ctx, e.c, e.root, "m")
			return err
		}, [][]byte{e.root}, []func(map[string]bool) bool{lacks("m")}},
		{"SETATTR of a directory", func() error {
			_, err := e.fs.Setattr(ctx, e.c, sub, vfs.SetAttr{SetMode: true, Mode: 0o750}, false, vfs.Time{})
			return err
		}, [][]byte{sub}, []func(map[string]bool) bool{has("s")}},
	}
	for _, op := range ops {
		before := len(e.finished())
		if err := op.do(); err != nil {
			t.Fatalf("%s: %v", op.name, err)
		}
		recs := e.finished()[before:]
		if len(recs) != len(op.dirs) {
			t.Fatalf("%s: %d fsyncs, want %d", op.name, len(recs), len(op.dirs))
		}
		for i, dir := range op.dirs {
			if coveredAfter(recs, dir, -1, op.ok[i]) < 0 {
				t.Errorf("%s: no fsync of directory %d began after the change", op.name, i)
			}
		}
	}
}

// Callers that change a directory while its fsync runs all wait for the
// next fsync, which one of them runs: n+1 creates cost two fsyncs, and
// each returns only after an fsync that began after its change.
func TestGroupCommitShares(t *testing.T) {
	e := newGCEnv(t)
	hold, release := gate()
	e.before = func(seq int) error {
		if seq == 0 {
			hold()
		}
		return nil
	}
	const n = 16
	errs := make([]error, n+1)
	covered := make([]int, n+1)
	var wg sync.WaitGroup
	run := func(i int) {
		defer wg.Done()
		name := fmt.Sprint("f", i)
		errs[i] = e.create(e.root, name)
		covered[i] = coveredAfter(e.finished(), e.root, -1, has(name))
	}
	wg.Add(1)
	go run(0)
	for e.startedCount() == 0 {
		time.Sleep(time.Millisecond) // until the first fsync holds
	}
	for i := 1; i <= n; i++ {
		wg.Add(1)
		go run(i)
	}
	e.waitQueued(e.root, n)
	release()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("create %d: %v", i, err)
		}
	}
	if got := len(e.finished()); got != 2 {
		t.Errorf("%d creates: %d fsyncs, want 2", n+1, got)
	}
	if covered[0] != 0 {
		t.Errorf("the first create was covered by fsync %d, want 0", covered[0])
	}
	for i := 1; i <= n; i++ {
		if covered[i] != 1 {
			t.Errorf("create %d (made while fsync 0 ran) returned covered by fsync %d, want 1", i, covered[i])
		}
	}
}

func (e *gcEnv) startedCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.started
}

// An fsync's error reaches every caller it covered and no other: fsync 1
// fails while the callers of fsync 2 queue behind it; fsync 2 succeeds.
// Those of fsync 1 must all see the error (never fsync 2's success), the
// others none; afterwards a lone call costs one fresh fsync.
func TestGroupCommitErrorReachesEveryCoveredCaller(t *testing.T) {
	e := newGCEnv(t)
	hold0, release0 := gate()
	hold1, release1 := gate()
	e.before = func(seq int) error {
		switch seq {
		case 0:
			hold0()
		case 1:
			hold1()
			return unix.EIO
		}
		return nil
	}
	const k = 8
	var wg sync.WaitGroup
	errs := make(map[string]error)
	var mu sync.Mutex
	run := func(name string) {
		defer wg.Done()
		err := e.create(e.root, name)
		mu.Lock()
		errs[name] = err
		mu.Unlock()
	}
	wg.Add(1)
	go run("lead")
	for e.startedCount() == 0 {
		time.Sleep(time.Millisecond)
	}
	for i := range k {
		wg.Add(1)
		go run(fmt.Sprint("one", i))
	}
	e.waitQueued(e.root, k)
	release0()
	for e.startedCount() < 2 {
		time.Sleep(time.Millisecond) // fsync 1 runs (held)
	}
	for i := range k {
		wg.Add(1)
		go run(fmt.Sprint("two", i))
	}
	e.waitQueued(e.root, k)
	release1()
	wg.Wait()
	if errs["lead"] != nil {
		t.Errorf("the first create: %v", errs["lead"])
	}
	for i := range k {
		if err := errs[fmt.Sprint("one", i)]; err != vfs.ErrIO {
			t.Errorf("create %d covered by the failed fsync: %v, want %v", i, err, vfs.ErrIO)
		}
		if err := errs[fmt.Sprint("two", i)]; err != nil {
			t.Errorf("create %d covered by the fsync after it: %v", i, err)
		}
	}
	if got := len(e.finished()); got != 3 {
		t.Errorf("%d fsyncs, want 3", got)
	}
	if err := e.create(e.root, "later"); err != nil {
		t.Errorf("a create after the failure: %v", err)
	}
	if got := len(e.finished()); got != 4 {
		t.Errorf("%d fsyncs after one more create, want 4", got)
	}
}

// Many goroutines create, rename (within and across two directories) and
// remove at once: every acknowledgement follows a successful fsync of each
// changed directory that began after the change, and no directory ever
// has two fsyncs at once. Run it with -race.
func TestGroupCommitConcurrent(t *testing.T) {
	e := newGCEnv(t)
	ctx := context.Background()
	other := e.mkdir(e.root, "other")
	const workers, rounds = 8, 25
	var wg sync.WaitGroup
	var ops sync.Mutex
	nops := 0
	count := func() {
		ops.Lock()
		nops++
		ops.Unlock()
	}
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				a, b, c := fmt.Sprintf("a%d.%d", w, r), fmt.Sprintf("b%d.%d", w, r), fmt.Sprintf("c%d.%d", w, r)
				if err := e.create(e.root, a); err != nil {
					t.Errorf("CREATE %s: %v", a, err)
					return
				}
				count()
				s := coveredAfter(e.finished(), e.root, -1, has(a))
				if s < 0 {
					t.Errorf("CREATE %s acknowledged before an fsync covered it", a)
					return
				}
				if _, err := e.fs.Rename(ctx, e.c, e.root, a, e.root, b); err != nil {
					t.Errorf("RENAME %s: %v", a, err)
					return
				}
				count()
				if s = coveredAfter(e.finished(), e.root, s, func(m map[string]bool) bool { return m[b] && !m[a] }); s < 0 {
					t.Errorf("RENAME %s → %s acknowledged before an fsync covered it", a, b)
					return
				}
				if _, err := e.fs.Rename(ctx, e.c, e.root, b, other, c); err != nil {
					t.Errorf("RENAME %s: %v", b, err)
					return
				}
				count()
				if coveredAfter(e.finished(), e.root, s, lacks(b)) < 0 || coveredAfter(e.finished(), other, -1, has(c)) < 0 {
					t.Errorf("RENAME %s → other/%s acknowledged before fsyncs of both directories covered it", b, c)
					return
				}
				so := coveredAfter(e.finished(), other, -1, has(c))
				if _, err := e.fs.Remove(ctx, e.c, other, c); err != nil {
					t.Errorf("REMOVE %s: %v", c, err)
					return
				}
				count()
				if coveredAfter(e.finished(), other, so, lacks(c)) < 0 {
					t.Errorf("REMOVE other/%s acknowledged before an fsync covered it", c)
					return
				}
			}
		}()
	}
	wg.Wait()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.overlap {
		t.Error("two fsyncs of one directory ran at once")
	}
	if n := len(e.fs.dirs.dirs); n != 0 {
		t.Errorf("%d directories left in the committer's map", n)
	}
	// Without grouping: one fsync per directory changed (5 per round).
	t.Logf("%d operations, %d fsyncs (%d without group commit)", nops, len(e.done), workers*rounds*5)
}

// RWXNFS_UNSAFE_NO_SYNC's switch still turns every directory fsync off.
func TestGroupCommitUnsafeDisableSync(t *testing.T) {
	e := newGCEnv(t)
	e.fs.UnsafeDisableSync()
	if err := e.create(e.root, "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.fs.Rename(context.Background(), e.c, e.root, "x", e.root, "y"); err != nil {
		t.Fatal(err)
	}
	if n := len(e.finished()); n != 0 {
		t.Errorf("%d fsyncs with sync disabled", n)
	}
}
