package loadgen

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rwxnfs/rwxnfs/pkg/locking"
	"github.com/rwxnfs/rwxnfs/pkg/nfsclient"
	"github.com/rwxnfs/rwxnfs/pkg/rpc"
	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// Workloads are the steps nfsbench runs, in order. The first eight have
// many calls in flight; "one-meta" and "one-readdir" are the metadata
// workloads again with one call at a time; "libnfs" is the same one-call
// workloads made through libnfs's synchronous API (Config.Libnfs).
var Workloads = []string{"null", "seqwrite", "seqread", "randread", "randwrite", "meta", "readdir", "lock", "one-meta", "one-readdir", "libnfs"}

// outputs are the results a step produces, so that a failed step can be
// shown as failed in every row it would have filled.
func outputs(step string) []Result {
	phases := func(mode, client string, extra ...string) []Result {
		var rs []Result
		for _, w := range append(append([]string{}, MetaPhases...), extra...) {
			rs = append(rs, Result{Workload: w, Mode: mode, Client: client})
		}
		return rs
	}
	switch step {
	case "meta":
		return phases("", "", "meta")
	case "lock":
		return []Result{{Workload: "lock"}, {Workload: "lock-null"}}
	case "one-meta":
		return append([]Result{{Workload: "null", Mode: ModeOne}}, phases(ModeOne, "")...)
	case "one-readdir":
		return []Result{{Workload: "readdir", Mode: ModeOne}}
	case "libnfs":
		return phases(ModeOne, ClientLibnfs, "readdir")
	}
	return []Result{{Workload: step}}
}

// Config sizes the run. The defaults of cmd/nfsbench are the full
// benchmark; tests and bench-smoke use tiny sizes.
type Config struct {
	Label       string
	Conns       int           // NFS connections (nconnect)
	InFlight    int           // RPCs in flight per connection
	Duration    time.Duration // for the timed workloads (null, random I/O, lock)
	SeqSize     int64         // bytes of the sequential file
	IOSize      int           // sequential READ/WRITE size
	Files       int           // small files of the metadata workloads
	MetaClients int           // connections the small files are spread over
	DirEntries  int           // entries of the READDIRPLUS directory
	// OneFiles and OneDirEntries size the one-call-in-flight workloads;
	// their listings repeat for OneDuration (default Duration).
	OneFiles      int
	OneDirEntries int
	OneDuration   time.Duration
	// Libnfs is the path of the libnfs-onecall program
	// (bench/libnfs-onecall.c); "" skips the libnfs step.
	Libnfs string
	// Backing, if set, is the export's directory on this machine: the
	// READDIRPLUS directory is then filled there directly, which is far
	// quicker than 100,000 CREATEs and is not what is being measured.
	Backing string
	NoLock  bool          // the server has no NLM: report lock as n/a
	Timeout time.Duration // per workload
	Rounds  int           // repetitions of each workload; the best is reported
	PID     int           // the server's process id, if it runs on this machine
	Metrics string        // host:port of the server's Prometheus /metrics (rwxnfs), if any
	// EchoAddr is where the limits' RPC echo server listens; "" runs one
	// inside nfsbench.
	EchoAddr string
	// Hook, if set, is run around every measured phase (see bench.hook),
	// for attaching profilers.
	Hook string
	Only map[string]bool
}

func (c *Config) want(w string) bool { return len(c.Only) == 0 || c.Only[w] }

func (c *Config) oneDuration() time.Duration {
	if c.OneDuration > 0 {
		return c.OneDuration
	}
	return c.Duration
}

// Stepper runs named workloads, one at a time, against one server (or,
// for the limits, directly against the backing directory).
type Stepper interface {
	Label() string
	// Step runs one workload; a workload the stepper has no figure for
	// returns no results and no error.
	Step(ctx context.Context, name string) ([]Result, error)
	Close()
}

// Run mounts the export and performs the workloads, calling emit with each
// result as it is known.
func Run(ctx context.Context, t Target, cfg Config, emit func(Result)) error {
	s, err := Open(ctx, t, cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	return Interleave(ctx, []Stepper{s}, cfg, emit)
}

// Interleave runs each workload against every stepper in turn before
// moving to the next workload, so the servers compared are measured close
// together in time on a machine whose load changes minute to minute. With
// cfg.Rounds > 1 this is repeated, each round starting with a different
// server, and every round's figures are emitted (Result.Round): the report
// takes the median, and the ratio of two servers within each round. It
// returns an error naming every workload that failed; the others still
// run.
func Interleave(ctx context.Context, ss []Stepper, cfg Config, emit func(Result)) error {
	var failed []string
	noFile := map[string]bool{} // steppers whose data file could not be made
	rounds := max(cfg.Rounds, 1)
	for _, name := range Workloads {
		needFile := name == "seqwrite" && (cfg.want("seqread") || cfg.want("randread") || cfg.want("randwrite") || cfg.want("lock"))
		if !cfg.want(name) && !needFile {
			continue
		}
		n := rounds
		if !cfg.want(name) {
			n = 1 // only the data file is needed
		}
		dataStep := name == "seqread" || name == "randread" || name == "randwrite" || name == "lock"
		done := map[string]bool{} // failed: not repeated
		for round := 0; round < n; round++ {
			for k := range ss {
				// Each round starts with a different server, so none is
				// always measured first (or right after the limit).
				s := ss[(k+round)%len(ss)]
				if done[s.Label()] {
					continue
				}
				var rs []Result
				var err error
				if dataStep && noFile[s.Label()] {
					err = errors.New("no data file (seqwrite failed)")
				} else {
					rs, err = step(ctx, s, name, cfg.Timeout)
				}
				if err != nil {
					rs = withFailures(rs, name, err)
					done[s.Label()] = true
					failed = append(failed, s.Label()+":"+name)
					if name == "seqwrite" {
						noFile[s.Label()] = true
					}
				}
				if !cfg.want(name) {
					continue
				}
				for _, r := range rs {
					r.Server = s.Label()
					if r.Error == "" && r.NA == "" {
						if r.Conns == 0 {
							r.Conns, r.InFlight = cfg.Conns, cfg.InFlight
						}
						r.Round, r.Rounds = round+1, n
					}
					emit(r)
				}
			}
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("workloads failed: %v", failed)
	}
	return nil
}

// selfMetered are the steps that read the meters (and run the hook)
// around each of their phases themselves.
var selfMetered = map[string]bool{"meta": true, "readdir": true, "lock": true, "one-meta": true, "one-readdir": true, "libnfs": true}

// step runs one workload on s within timeout. The other steps yield one
// figure, which gets the server's CPU and calls charged to it here.
func step(ctx context.Context, s Stepper, name string, timeout time.Duration) ([]Result, error) {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	b, whole := s.(*bench)
	whole = whole && !selfMetered[name]
	var r0 reading
	if whole {
		r0 = b.begin(name, "", "")
	}
	rs, err := s.Step(wctx, name)
	if whole && err == nil && len(rs) == 1 {
		b.end(r0, &rs[0])
	}
	if err != nil && wctx.Err() != nil && ctx.Err() == nil {
		err = fmt.Errorf("timed out after %s: %w", timeout, err)
	}
	return rs, err
}

// withFailures keeps the figures a failed step did produce and marks every
// other result it would have produced as failed with err.
func withFailures(rs []Result, name string, err error) []Result {
	have := map[[3]string]bool{}
	for _, r := range rs {
		have[[3]string{r.Workload, r.Mode, r.Client}] = true
	}
	for _, o := range outputs(name) {
		if !have[[3]string{o.Workload, o.Mode, o.Client}] {
			o.Error = err.Error()
			rs = append(rs, o)
		}
	}
	return rs
}

// Open mounts t's export, opens cfg.Conns connections and makes a work
// directory of its own in the export.
func Open(ctx context.Context, t Target, cfg Config) (Stepper, error) {
	if err := t.Resolve(ctx, !cfg.NoLock && cfg.want("lock")); err != nil {
		return nil, err
	}
	root, err := t.Mount(ctx)
	if err != nil {
		return nil, err
	}
	cs, err := t.Dial(ctx, cfg.Conns)
	if err != nil {
		return nil, err
	}
	b := &bench{t: t, cfg: cfg, cs: cs, root: root}
	if err := b.setup(ctx); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

func (b *bench) setup(ctx context.Context) error {
	var err error
	cs, root := b.cs, b.root
	b.name = fmt.Sprintf("nfsbench-%d", time.Now().UnixNano())
	if b.dir, _, err = cs[0].Mkdir(ctx, root, b.name, nfsclient.SetAttr{Mode: nfsclient.U32(0o755)}); err != nil {
		return fmt.Errorf("MKDIR work directory: %w", err)
	}
	if b.dir == nil {
		if b.dir, _, err = cs[0].Lookup(ctx, root, b.name); err != nil {
			return err
		}
	}
	rt, wt, err := cs[0].FSInfo(ctx, root)
	if err != nil {
		return err
	}
	b.rsize, b.wsize = min(b.cfg.IOSize, int(rt)), min(b.cfg.IOSize, int(wt))
	return nil
}

func (b *bench) Label() string { return b.cfg.Label }

func (b *bench) meter() meter { return meter{pid: b.cfg.PID, metrics: b.cfg.Metrics} }

func (b *bench) Close() {
	for _, c := range b.cs {
		c.Close()
	}
}

func (b *bench) Step(ctx context.Context, name string) ([]Result, error) {
	fns := map[string]func(context.Context) ([]Result, error){
		"null": b.null, "seqwrite": b.seqWrite, "seqread": b.seqRead, "randread": b.randRead,
		"randwrite": b.randWrite, "meta": b.meta, "readdir": b.readdir, "lock": b.lock,
		"one-meta": b.oneMeta, "one-readdir": b.oneReaddir, "libnfs": b.libnfs,
	}
	f, ok := fns[name]
	if !ok {
		return nil, fmt.Errorf("no workload %q", name)
	}
	return f(ctx)
}

type bench struct {
	t            Target
	cfg          Config
	cs           []*nfsclient.Client
	root, dir    []byte
	name         string
	file         []byte // the sequential file's handle
	fileName     string
	listDir      []byte // the READDIRPLUS directory, once made
	oneList      string // the one-call READDIRPLUS directory's name in dir, once made
	oneListFH    []byte
	rsize, wsize int
	n            int // for unique names
}

// uniq returns a name not used before in the work directory, so that a
// workload can be repeated.
func (b *bench) uniq(prefix string) string {
	b.n++
	return fmt.Sprintf("%s%d", prefix, b.n)
}

func (b *bench) conn(w int) *nfsclient.Client { return b.cs[w%len(b.cs)] }
func (b *bench) workers() int                 { return b.cfg.Conns * b.cfg.InFlight }

func (b *bench) null(ctx context.Context) ([]Result, error) {
	t, err := drive(ctx, plan{workers: b.workers(), dur: b.cfg.Duration}, func(ctx context.Context, w int, _ int64) (int, error) {
		return 0, b.conn(w).Null(ctx)
	})
	if err != nil {
		return nil, err
	}
	return []Result{t.result("null", 0)}, nil
}

// The file's content is a fixed random block, with each 4 KiB block
// stamped with its own offset, so a read of the wrong place, a torn write
// or a stale page shows up as a mismatch.
var pattern = func() []byte {
	b := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{'r', 'w', 'x', 'n', 'f', 's'}).Read(b)
	return b
}()

const blk = 4096

// fill writes the expected content of [off, off+len(buf)); off and len
// are multiples of 4 KiB.
func fill(buf []byte, off int64) {
	for i := 0; i < len(buf); i += blk {
		o := off + int64(i)
		p := o % int64(len(pattern))
		copy(buf[i:i+blk], pattern[p:p+blk])
		binary.BigEndian.PutUint64(buf[i:], uint64(o)^0x5a5a5a5a5a5a5a5a)
	}
}

func check(got []byte, off int64, want []byte) error {
	fill(want[:len(got)], off)
	if !bytes.Equal(got, want[:len(got)]) {
		for i := range got {
			if got[i] != want[i] {
				return fmt.Errorf("data mismatch at offset %d (read of %d bytes at %d)", off+int64(i), len(got), off)
			}
		}
	}
	return nil
}

var bufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// commit sends COMMIT and checks its verifier against the WRITEs': a
// change means the server restarted and unstable data may be lost.
func (b *bench) commit(ctx context.Context, verf *[8]byte, mixed bool) (time.Duration, error) {
	t0 := time.Now()
	v, err := b.cs[0].Commit(ctx, b.file)
	if err != nil {
		return 0, err
	}
	if mixed {
		return 0, errors.New("WRITE verifiers differed within one run (server restarted?)")
	}
	if verf != nil && v != *verf {
		return 0, fmt.Errorf("COMMIT verifier %x differs from WRITE verifier %x", v, *verf)
	}
	return time.Since(t0), nil
}

type verfTracker struct {
	mu    sync.Mutex
	seen  bool
	v     [8]byte
	mixed bool
}

func (vt *verfTracker) add(res nfsclient.WriteResult) {
	if res.Committed != nfsclient.Unstable {
		return // FILE_SYNC/DATA_SYNC data needs no COMMIT
	}
	vt.mu.Lock()
	defer vt.mu.Unlock()
	if vt.seen && vt.v != res.Verifier {
		vt.mixed = true
	}
	vt.seen, vt.v = true, res.Verifier
}

func (vt *verfTracker) verifier() *[8]byte {
	if !vt.seen {
		return nil
	}
	return &vt.v
}

func (b *bench) seqWrite(ctx context.Context) ([]Result, error) {
	// Each repetition writes a new file; the last one's space is given back.
	if b.fileName != "" {
		if err := b.cs[0].Remove(ctx, b.dir, b.fileName); err != nil {
			return nil, err
		}
	}
	b.fileName = b.uniq("seq")
	fh, _, err := b.cs[0].Create(ctx, b.dir, b.fileName, nfsclient.Guarded, nfsclient.SetAttr{Mode: nfsclient.U32(0o644)})
	if err != nil {
		return nil, err
	}
	if fh == nil {
		if fh, _, err = b.cs[0].Lookup(ctx, b.dir, b.fileName); err != nil {
			return nil, err
		}
	}
	b.file = fh
	n := b.cfg.SeqSize / int64(b.wsize)
	var vt verfTracker
	t, err := drive(ctx, plan{workers: b.workers(), total: n}, func(ctx context.Context, w int, i int64) (int, error) {
		bp := bufs.Get().(*[]byte)
		defer bufs.Put(bp)
		buf := (*bp)[:b.wsize]
		off := i * int64(b.wsize)
		fill(buf, off)
		res, err := b.conn(w).Write(ctx, fh, uint64(off), buf, nfsclient.Unstable)
		if err != nil {
			return 0, err
		}
		if int(res.Count) != len(buf) {
			return 0, fmt.Errorf("short WRITE at %d: %d of %d bytes", off, res.Count, len(buf))
		}
		vt.add(res)
		return len(buf), nil
	})
	if err != nil {
		return nil, err
	}
	extra, err := b.commit(ctx, vt.verifier(), vt.mixed)
	if err != nil {
		return nil, err
	}
	r := t.result("seqwrite", extra)
	r.Note = fmt.Sprintf("%d MiB in %d KiB UNSTABLE WRITEs, then COMMIT", b.cfg.SeqSize>>20, b.wsize>>10)
	return []Result{r}, nil
}

// readAt reads exactly len(buf) bytes at off, looping over short reads.
func readAt(ctx context.Context, c *nfsclient.Client, fh []byte, off int64, n int) ([]byte, error) {
	var out []byte
	for len(out) < n {
		data, eof, err := c.Read(ctx, fh, uint64(off)+uint64(len(out)), uint32(n-len(out)))
		if err != nil {
			return nil, err
		}
		out = append(out, data...)
		if len(data) == 0 || (eof && len(out) < n) {
			return nil, fmt.Errorf("READ at %d: got %d of %d bytes (eof=%v)", off, len(out), n, eof)
		}
	}
	return out, nil
}

func (b *bench) seqRead(ctx context.Context) ([]Result, error) {
	n := b.cfg.SeqSize / int64(b.rsize)
	t, err := drive(ctx, plan{workers: b.workers(), total: n}, func(ctx context.Context, w int, i int64) (int, error) {
		off := i * int64(b.rsize)
		data, err := readAt(ctx, b.conn(w), b.file, off, b.rsize)
		if err != nil {
			return 0, err
		}
		bp := bufs.Get().(*[]byte)
		defer bufs.Put(bp)
		return len(data), check(data, off, *bp)
	})
	if err != nil {
		return nil, err
	}
	r := t.result("seqread", 0)
	r.Note = fmt.Sprintf("%d MiB in %d KiB READs, every byte compared", b.cfg.SeqSize>>20, b.rsize>>10)
	return []Result{r}, nil
}

func randOff(size int64) int64 { return rand.Int64N(size/blk) * blk }

func (b *bench) randRead(ctx context.Context) ([]Result, error) {
	t, err := drive(ctx, plan{workers: b.workers(), dur: b.cfg.Duration}, func(ctx context.Context, w int, _ int64) (int, error) {
		off := randOff(b.cfg.SeqSize)
		data, err := readAt(ctx, b.conn(w), b.file, off, blk)
		if err != nil {
			return 0, err
		}
		var want [blk]byte
		return len(data), check(data, off, want[:])
	})
	if err != nil {
		return nil, err
	}
	r := t.result("randread", 0)
	r.Note = fmt.Sprintf("4 KiB READs at random offsets of a %d MiB file, compared", b.cfg.SeqSize>>20)
	return []Result{r}, nil
}

func (b *bench) randWrite(ctx context.Context) ([]Result, error) {
	var vt verfTracker
	t, err := drive(ctx, plan{workers: b.workers(), dur: b.cfg.Duration}, func(ctx context.Context, w int, _ int64) (int, error) {
		off := randOff(b.cfg.SeqSize)
		var buf [blk]byte
		// The same content the file already has: later reads still check.
		fill(buf[:], off)
		res, err := b.conn(w).Write(ctx, b.file, uint64(off), buf[:], nfsclient.Unstable)
		if err != nil {
			return 0, err
		}
		if res.Count != blk {
			return 0, fmt.Errorf("short WRITE at %d: %d bytes", off, res.Count)
		}
		vt.add(res)
		return blk, nil
	})
	if err != nil {
		return nil, err
	}
	extra, err := b.commit(ctx, vt.verifier(), vt.mixed)
	if err != nil {
		return nil, err
	}
	// Read a few blocks back after the COMMIT.
	for i := 0; i < 64; i++ {
		off := randOff(b.cfg.SeqSize)
		data, err := readAt(ctx, b.cs[0], b.file, off, blk)
		if err != nil {
			return nil, err
		}
		var want [blk]byte
		if err := check(data, off, want[:]); err != nil {
			return nil, err
		}
	}
	r := t.result("randwrite", extra)
	r.Note = "4 KiB UNSTABLE WRITEs at random offsets, then COMMIT"
	return []Result{r}, nil
}

func entryName(i int) string { return fmt.Sprintf("e%07d", i) }

// entryIndex is the inverse of entryName; -1 for any other name.
func entryIndex(name string) int {
	if len(name) != 8 || name[0] != 'e' {
		return -1
	}
	k := 0
	for _, c := range name[1:] {
		if c < '0' || c > '9' {
			return -1
		}
		k = k*10 + int(c-'0')
	}
	return k
}

// populate fills a READDIRPLUS directory with n empty files, directly on
// the backing directory when there is one (quicker than n CREATEs, and not
// what is measured).
func (b *bench) populate(ctx context.Context, dir []byte, dirName string, n int) error {
	if b.cfg.Backing != "" {
		p := filepath.Join(b.cfg.Backing, b.name, dirName)
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				for i := g; i < n; i += 4 {
					f, err := os.OpenFile(filepath.Join(p, entryName(i)), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
					if err != nil {
						errs[g] = err
						return
					}
					f.Close()
				}
			}(g)
		}
		wg.Wait()
		return errors.Join(errs...)
	}
	_, err := drive(ctx, plan{workers: b.workers(), total: int64(n)}, func(ctx context.Context, w int, i int64) (int, error) {
		_, _, err := b.conn(w).Create(ctx, dir, entryName(int(i)), nfsclient.Guarded, nfsclient.SetAttr{Mode: nfsclient.U32(0o644)})
		return 0, err
	})
	return err
}

// listDir makes (once) and returns a directory of n entries for listing.
func (b *bench) listingDir(ctx context.Context, n int) (string, []byte, error) {
	dirName := b.uniq("dir")
	dir, _, err := b.cs[0].Mkdir(ctx, b.dir, dirName, nfsclient.SetAttr{Mode: nfsclient.U32(0o755)})
	if err != nil {
		return "", nil, err
	}
	if dir == nil {
		if dir, _, err = b.cs[0].Lookup(ctx, b.dir, dirName); err != nil {
			return "", nil, err
		}
	}
	if err := b.populate(ctx, dir, dirName, n); err != nil {
		return "", nil, fmt.Errorf("filling the directory: %w", err)
	}
	return dirName, dir, nil
}

// listAll lists dir from start to end with READDIRPLUS (32 KiB replies)
// and checks that it holds exactly entryName(0..want-1), each once, with
// attributes. onCall is given each call's latency.
func listAll(ctx context.Context, c *nfsclient.Client, dir []byte, want int, onCall func(time.Duration)) error {
	seen := make([]bool, want)
	got := 0
	var cookie uint64
	for {
		t0 := time.Now()
		page, eof, err := c.ReadDirPage(ctx, dir, cookie, true, 32<<10)
		if err != nil {
			return fmt.Errorf("READDIRPLUS after %d entries: %w", got, err)
		}
		onCall(time.Since(t0))
		for _, e := range page {
			if e.Name == "." || e.Name == ".." {
				continue
			}
			k := entryIndex(e.Name)
			if k < 0 || k >= want {
				return fmt.Errorf("READDIRPLUS listed %q, which is not in the directory", e.Name)
			}
			if seen[k] {
				return fmt.Errorf("READDIRPLUS listed %q twice", e.Name)
			}
			if e.Attr == nil {
				return fmt.Errorf("READDIRPLUS: no attributes for %q", e.Name)
			}
			seen[k] = true
			got++
		}
		if eof {
			break
		}
		if len(page) == 0 {
			return errors.New("READDIRPLUS: empty page without eof")
		}
		cookie = page[len(page)-1].Cookie
	}
	if got != want {
		for k, ok := range seen {
			if !ok {
				return fmt.Errorf("READDIRPLUS listed %d entries, want %d: %q missing", got, want, entryName(k))
			}
		}
	}
	return nil
}

// readdir lists a DirEntries-entry directory with READDIRPLUS, Conns
// listings at once (each on its own connection, one call at a time, as a
// listing's calls follow each other's cookies), again and again for
// Duration (each lister at least once).
func (b *bench) readdir(ctx context.Context) ([]Result, error) {
	if b.listDir == nil {
		_, dir, err := b.listingDir(ctx, b.cfg.DirEntries)
		if err != nil {
			return nil, err
		}
		b.listDir = dir // repetitions list the same directory
	}
	listers := len(b.cs)
	m0 := b.begin("readdir", "", "")
	lats := make([][]time.Duration, listers)
	passes := make([]int, listers)
	errs := make([]error, listers)
	start := time.Now()
	var wg sync.WaitGroup
	for l := 0; l < listers; l++ {
		wg.Add(1)
		go func(l int) {
			defer wg.Done()
			for passes[l] == 0 || time.Since(start) < b.cfg.Duration {
				if errs[l] = listAll(ctx, b.cs[l], b.listDir, b.cfg.DirEntries, func(d time.Duration) { lats[l] = append(lats[l], d) }); errs[l] != nil {
					return
				}
				passes[l]++
			}
		}(l)
	}
	wg.Wait()
	el := time.Since(start)
	t := tally{elapsed: el}
	all := 0
	for l := range lats {
		t.lat = append(t.lat, lats[l]...)
		all += passes[l]
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%d listings of %d entries done in %.0f s: %w", all, b.cfg.DirEntries, el.Seconds(), err)
	}
	t.ops = int64(all) * int64(b.cfg.DirEntries)
	r := t.result("readdir", 0)
	r.Conns, r.InFlight = listers, 1
	r.Note = fmt.Sprintf("ops = entries; %d full listings of %d entries by %d listers at once, 32 KiB READDIRPLUS; latency per call", all, b.cfg.DirEntries, listers)
	b.end(m0, &r)
	perListing(&r, b.cfg.DirEntries)
	return []Result{r}, nil
}

// oneListing makes (once) the one-call workloads' OneDirEntries directory.
func (b *bench) oneListing(ctx context.Context) error {
	if b.oneListFH != nil {
		return nil
	}
	name, fh, err := b.listingDir(ctx, b.cfg.OneDirEntries)
	if err != nil {
		return err
	}
	b.oneList, b.oneListFH = name, fh
	return nil
}

// oneReaddir lists a OneDirEntries-entry directory (as `ls -l` does)
// from start to end on one connection, again and again for Duration;
// latency is per listing.
func (b *bench) oneReaddir(ctx context.Context) ([]Result, error) {
	if err := b.oneListing(ctx); err != nil {
		return nil, err
	}
	m0 := b.begin("readdir", ModeOne, "")
	var t tally
	calls := 0
	start := time.Now()
	for len(t.lat) == 0 || time.Since(start) < b.cfg.oneDuration() {
		t0 := time.Now()
		if err := listAll(ctx, b.cs[0], b.oneListFH, b.cfg.OneDirEntries, func(time.Duration) { calls++ }); err != nil {
			return nil, err
		}
		t.lat = append(t.lat, time.Since(t0))
	}
	t.elapsed = time.Since(start)
	t.ops = int64(len(t.lat)) * int64(b.cfg.OneDirEntries)
	r := t.result("readdir", 0)
	r.Mode, r.Conns, r.InFlight = ModeOne, 1, 1
	r.Note = fmt.Sprintf("ops = entries; %d listings of %d entries, %d READDIRPLUS calls of 32 KiB each; latency per listing",
		len(t.lat), b.cfg.OneDirEntries, calls/len(t.lat))
	b.end(m0, &r)
	perListing(&r, b.cfg.OneDirEntries)
	return []Result{r}, nil
}

// NLM v4 procedures.
const (
	nlmNull   = 0
	nlmLock   = 2
	nlmUnlock = 4
)

// lock takes and releases byte-range locks over one NLM connection, each
// worker as its own lock owner on its own range, and measures NLM NULL on
// the same connection for comparison.
func (b *bench) lock(ctx context.Context) ([]Result, error) {
	if b.cfg.NoLock {
		return []Result{{Workload: "lock", NA: "server has no NLM"}, {Workload: "lock-null", NA: "server has no NLM"}}, nil
	}
	rc, err := rpc.Dial(ctx, b.t.addr(b.t.NLMPort))
	if err != nil {
		return nil, fmt.Errorf("NLM port: %w", err)
	}
	defer rc.Close()
	rc.Cred = rpc.AuthSysCred{Machine: "nfsbench", UID: 0, GID: 0}.Opaque()
	host, _, _ := net.SplitHostPort(rc.LocalAddr().String())
	lk := func(w int) locking.Lock4 {
		return locking.Lock4{CallerName: host, FH: b.file, OH: []byte(fmt.Sprintf("nfsbench-%d", w)),
			Svid: int32(w + 1), Offset: uint64(w) * blk, Len: blk}
	}
	call := func(ctx context.Context, proc uint32, enc func(*xdr.Writer)) (locking.Stat, error) {
		body, err := rc.Call(ctx, progNLM, 4, proc, enc)
		if err != nil {
			return 0, err
		}
		var res locking.Res
		if err := res.Decode(xdr.NewReader(body)); err != nil {
			return 0, err
		}
		return res.Stat, nil
	}
	lockOnce := func(ctx context.Context, w int) error {
		a := locking.LockArgs{Cookie: []byte{byte(w)}, Exclusive: true, Lock: lk(w)}
		st, err := call(ctx, nlmLock, a.Encode)
		if err != nil {
			return err
		}
		if st != locking.StatGranted {
			return fmt.Errorf("NLM LOCK: %s", st)
		}
		u := locking.UnlockArgs{Cookie: []byte{byte(w)}, Lock: lk(w)}
		if st, err = call(ctx, nlmUnlock, u.Encode); err != nil {
			return err
		}
		if st != locking.StatGranted {
			return fmt.Errorf("NLM UNLOCK: %s", st)
		}
		return nil
	}
	// A server just started may be in its grace period: wait it out.
	for {
		err := lockOnce(ctx, 0)
		if err == nil {
			break
		}
		if !isGrace(err) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(500 * time.Millisecond):
		}
	}
	p := plan{workers: b.cfg.InFlight, dur: b.cfg.Duration}
	m0 := b.begin("lock", "", "")
	t, err := drive(ctx, p, func(ctx context.Context, w int, _ int64) (int, error) { return 0, lockOnce(ctx, w) })
	if err != nil {
		return nil, err
	}
	lr := t.result("lock", 0)
	lr.Conns, lr.InFlight = 1, b.cfg.InFlight
	lr.Note = "ops = LOCK+UNLOCK pairs, one connection"
	b.end(m0, &lr)
	m0 = b.begin("lock-null", "", "")
	t, err = drive(ctx, p, func(ctx context.Context, w int, _ int64) (int, error) {
		_, err := rc.Call(ctx, progNLM, 4, nlmNull, nil)
		return 0, err
	})
	if err != nil {
		return []Result{lr}, err
	}
	nr := t.result("lock-null", 0)
	nr.Conns, nr.InFlight = 1, b.cfg.InFlight
	nr.Note = "NLM NULL on the same connection"
	b.end(m0, &nr)
	return []Result{lr, nr}, nil
}

func isGrace(err error) bool {
	return err != nil && strings.Contains(err.Error(), locking.StatDeniedGracePeriod.String())
}
