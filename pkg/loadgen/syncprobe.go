package loadgen

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// SyncProbe measures, directly on dir's filesystem, what it costs to make
// a namespace change durable before replying, in the ways issue 12 weighs:
// each operation creates an empty file, then
//
//	none           nothing (what ganesha's VFS FSAL does)
//	dir-fsync      open the directory, fsync it, close it (what nfsd does)
//	log-dsync      write a 4 KiB record to a preallocated log opened
//	               O_DSYNC (an intent log replayed at start-up)
//	log-fdatasync  write a 512-byte record to the log, then fdatasync it
//
// one at a time (ops operations), and then with conc operations at once:
// dir-fsync and log-dsync per operation, and group-commit, where one fsync
// of the directory covers every create that finished while the previous
// fsync ran. Nothing here is an implementation: it bounds what each
// change could buy on this filesystem.
func SyncProbe(ctx context.Context, dir string, ops, conc int) ([]Result, error) {
	work, err := os.MkdirTemp(dir, "sync-probe-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	log, err := newProbeLog(filepath.Join(work, "intent.log"))
	if err != nil {
		return nil, err
	}
	defer log.close()
	p := &probe{dir: work}
	var out []Result
	for _, c := range []struct {
		name, note string
		sync       func(w int) error
	}{
		{"none", "create, no sync", func(int) error { return nil }},
		{"dir-fsync", "create, then open+fsync+close of the directory", func(int) error { return p.fsyncDir() }},
		{"log-dsync", "create, then a 4 KiB O_DSYNC write to a preallocated log", func(w int) error { return log.dsync(w) }},
		{"log-fdatasync", "create, then a 512 B write to the log and fdatasync", func(w int) error { return log.fdatasync(w) }},
	} {
		r, err := p.run(ctx, c.name, 1, ops, c.sync)
		if err != nil {
			return out, fmt.Errorf("%s: %w", c.name, err)
		}
		r.Note = c.note + ", one at a time"
		out = append(out, r)
	}
	if conc > 1 {
		g := newGroupCommit(p.fsyncDir)
		for _, c := range []struct {
			name, note string
			sync       func(w int) error
		}{
			{"dir-fsync", "create, then fsync of the directory, each operation its own", func(int) error { return p.fsyncDir() }},
			{"group-commit", "create, then wait for one directory fsync that started after it", func(int) error { return g.wait() }},
			{"log-dsync", "create, then a 4 KiB O_DSYNC log write, each its own", func(w int) error { return log.dsync(w) }},
		} {
			r, err := p.run(ctx, c.name, conc, ops, c.sync)
			if err != nil {
				return out, fmt.Errorf("%s ×%d: %w", c.name, conc, err)
			}
			r.Note = fmt.Sprintf("%s; %d at once", c.note, conc)
			if c.name == "group-commit" {
				r.Note += fmt.Sprintf(" (%.1f creates per fsync)", float64(r.Ops)/float64(g.fsyncs()))
			}
			out = append(out, r)
		}
	}
	return out, nil
}

type probe struct {
	dir string
	n   int
}

func (p *probe) fsyncDir() error {
	fd, err := unix.Open(p.dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Fsync(fd)
}

// run makes ops creates by conc workers, each followed by sync.
func (p *probe) run(ctx context.Context, name string, conc, ops int, sync func(w int) error) (Result, error) {
	p.n++
	prefix := filepath.Join(p.dir, fmt.Sprintf("%s-%d-", name, p.n))
	t, err := drive(ctx, plan{workers: conc, total: int64(ops)}, func(_ context.Context, w int, i int64) (int, error) {
		fd, err := unix.Open(fmt.Sprintf("%s%d", prefix, i), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return 0, err
		}
		unix.Close(fd)
		return 0, sync(w)
	})
	if err != nil {
		return Result{}, err
	}
	r := t.result(name, 0)
	r.Server, r.Conns, r.InFlight = "sync-probe", 1, conc
	if conc == 1 {
		r.Mode = ModeOne
	}
	return r, nil
}

// probeLog is a preallocated, already-written file: records overwrite it
// in turn, as a circular intent log would, so no write changes its size
// or allocation (which would make fdatasync write metadata too).
type probeLog struct {
	dsyncFD, fd int
	mu          sync.Mutex
	next        int64
}

const probeLogSize = 64 << 20

func newProbeLog(path string) (*probeLog, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 1<<20)
	for off := int64(0); off < probeLogSize; off += int64(len(buf)) {
		if _, err := f.WriteAt(buf, off); err != nil {
			f.Close()
			return nil, err
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	f.Close()
	l := &probeLog{dsyncFD: -1, fd: -1}
	if l.dsyncFD, err = unix.Open(path, unix.O_WRONLY|unix.O_DSYNC|unix.O_CLOEXEC, 0); err != nil {
		return nil, err
	}
	if l.fd, err = unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0); err != nil {
		l.close()
		return nil, err
	}
	return l, nil
}

func (l *probeLog) close() {
	for _, fd := range []int{l.dsyncFD, l.fd} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

// slot returns the offset of the next record of size n.
func (l *probeLog) slot(n int64) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	off := l.next
	l.next = (l.next + n) % probeLogSize
	return off
}

func (l *probeLog) dsync(int) error {
	var rec [4096]byte
	_, err := unix.Pwrite(l.dsyncFD, rec[:], l.slot(int64(len(rec))))
	return err
}

func (l *probeLog) fdatasync(int) error {
	var rec [512]byte
	if _, err := unix.Pwrite(l.fd, rec[:], l.slot(int64(len(rec)))); err != nil {
		return err
	}
	return unix.Fdatasync(l.fd)
}

// groupCommit runs one fsync at a time; a waiter returns after an fsync
// that started after it asked, so its create is covered.
type groupCommit struct {
	mu      sync.Mutex
	cond    *sync.Cond
	want    uint64 // generation the next fsync will cover
	done    uint64 // generations covered so far
	running bool
	count   int
	err     error
	sync    func() error
}

func newGroupCommit(fsync func() error) *groupCommit {
	g := &groupCommit{sync: fsync}
	g.cond = sync.NewCond(&g.mu)
	return g
}

func (g *groupCommit) wait() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.want++
	mine := g.want
	for g.done < mine {
		if !g.running {
			// Lead an fsync covering everyone who has asked so far.
			g.running = true
			upto := g.want
			g.mu.Unlock()
			err := g.sync()
			g.mu.Lock()
			g.running, g.done, g.err = false, upto, err
			g.count++
			g.cond.Broadcast()
			continue
		}
		g.cond.Wait()
	}
	return g.err
}

func (g *groupCommit) fsyncs() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return max(g.count, 1)
}
