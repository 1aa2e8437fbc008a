package loadgen

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/rwxnfs/rwxnfs/pkg/nfsclient"
)

// MetaPhases are the metadata workloads, in the order they run over one
// set of files: each phase works on what the one before left.
var MetaPhases = []string{"create", "stat", "getattr", "setattr", "rename", "remove", "mkdir", "rmdir"}

// metaShape says how a pass of the metadata phases is made.
type metaShape struct {
	mode     string // "" or ModeOne
	clients  int    // connections, each working in a directory of its own
	inflight int    // calls in flight on each
	files    int
	// write makes create what a program saving a small file does through
	// the Linux client: CREATE, then on close one 4 KiB WRITE, FILE_SYNC
	// (the client sends a lone WRITE stable rather than WRITE + COMMIT).
	write bool
	// walk makes stat what a client with nothing cached does: LOOKUP of
	// every component from the export's root, not just the last.
	walk bool
}

// metaPass runs the metadata phases once. Every phase checks what the
// server says: created files have handles and the right type and size,
// SETATTR's reply shows the new mode, renamed names are what REMOVE
// takes, and the directories list empty at the end. A phase that fails
// ends the pass; the results of the phases before it are returned too.
func (b *bench) metaPass(ctx context.Context, sh metaShape) ([]Result, error) {
	if sh.write && sh.clients != 1 {
		return nil, errors.New("small-file writes are checked in one directory only")
	}
	cs, err := b.t.Dial(ctx, sh.clients)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	prefix := b.uniq("meta")
	if sh.mode == ModeOne {
		prefix = b.uniq("one")
	}
	dirs := make([][]byte, sh.clients)
	dirNames := make([]string, sh.clients)
	for i := range dirs {
		dirNames[i] = fmt.Sprintf("%s-client%d", prefix, i)
		if dirs[i], _, err = cs[i].Mkdir(ctx, b.dir, dirNames[i], nfsclient.SetAttr{Mode: nfsclient.U32(0o755)}); err != nil {
			return nil, err
		}
		if dirs[i] == nil {
			if dirs[i], _, err = cs[i].Lookup(ctx, b.dir, dirNames[i]); err != nil {
				return nil, err
			}
		}
	}
	n := int64(sh.files)
	nc := int64(sh.clients)
	// File i lives in client i%nc's directory.
	fname := func(i int64) string { return fmt.Sprintf("f%07d", i/nc) }
	fhs := make([][]byte, n)
	size := uint64(0)
	if sh.write {
		size = blk
	}
	var out []Result
	phase := func(label, note string, f func(ctx context.Context, c *nfsclient.Client, ci int, i int64) error) error {
		m0 := b.begin(label, sh.mode, "")
		t, err := drive(ctx, plan{workers: sh.clients * sh.inflight, total: n}, func(ctx context.Context, _ int, i int64) (int, error) {
			ci := int(i % nc)
			return 0, f(ctx, cs[ci], ci, i)
		})
		if err != nil {
			return fmt.Errorf("%s: %w", label, err)
		}
		r := t.result(label, 0)
		r.Mode, r.Conns, r.InFlight = sh.mode, sh.clients, sh.inflight
		r.Note = note
		b.end(m0, &r)
		out = append(out, r)
		return nil
	}
	where := fmt.Sprintf("%d files over %d connections, %d in flight each", n, sh.clients, sh.inflight)
	if sh.mode == ModeOne {
		where = fmt.Sprintf("%d files, one call at a time", n)
	}
	createNote := "CREATE (GUARDED) of an empty file; " + where
	if sh.write {
		createNote = "CREATE (GUARDED), then one 4 KiB WRITE FILE_SYNC (close); " + where
	}
	statNote := "LOOKUP of the name; " + where
	if sh.walk {
		statNote = "LOOKUP of each of the 3 path components from the export's root; " + where
	}
	type step struct {
		name, note string
		f          func(ctx context.Context, c *nfsclient.Client, ci int, i int64) error
	}
	var steps []step
	if sh.mode == ModeOne {
		// The round trip alone: what every one-call operation pays before
		// the server does any work.
		steps = append(steps, step{"null", fmt.Sprintf("NFS NULL; %d calls, one at a time", n), func(ctx context.Context, c *nfsclient.Client, _ int, _ int64) error {
			return c.Null(ctx)
		}})
	}
	steps = append(steps, []step{
		{"create", createNote, func(ctx context.Context, c *nfsclient.Client, ci int, i int64) error {
			fh, a, err := c.Create(ctx, dirs[ci], fname(i), nfsclient.Guarded, nfsclient.SetAttr{Mode: nfsclient.U32(0o644)})
			if err == nil && (fh == nil || a == nil) {
				// Allowed by RFC 1813, but the Linux client then needs a LOOKUP.
				fh, _, err = c.Lookup(ctx, dirs[ci], fname(i))
			}
			fhs[i] = fh
			if err != nil || !sh.write {
				return err
			}
			return writeSmall(ctx, c, fh, i)
		}},
		{"stat", statNote, func(ctx context.Context, c *nfsclient.Client, ci int, i int64) error {
			var a *nfsclient.Attr
			var err error
			if sh.walk {
				fh := b.root
				for _, comp := range []string{b.name, dirNames[ci], fname(i)} {
					if fh, a, err = c.Lookup(ctx, fh, comp); err != nil {
						return err
					}
				}
			} else if _, a, err = c.Lookup(ctx, dirs[ci], fname(i)); err != nil {
				return err
			}
			return checkAttr("LOOKUP "+fname(i), a, size, 0)
		}},
		{"getattr", "GETATTR of the file's handle; " + where, func(ctx context.Context, c *nfsclient.Client, ci int, i int64) error {
			a, err := c.GetAttr(ctx, fhs[i])
			if err != nil {
				return err
			}
			return checkAttr("GETATTR "+fname(i), &a, size, 0)
		}},
		{"setattr", "SETATTR mode 0600 (chmod); " + where, func(ctx context.Context, c *nfsclient.Client, ci int, i int64) error {
			a, err := c.SetAttr(ctx, fhs[i], nfsclient.SetAttr{Mode: nfsclient.U32(0o600)})
			if err != nil || a == nil {
				return err // post-op attributes are optional
			}
			return checkAttr("SETATTR "+fname(i), a, size, 0o600)
		}},
		{"rename", "RENAME to a new name in the same directory; " + where, func(ctx context.Context, c *nfsclient.Client, ci int, i int64) error {
			return c.Rename(ctx, dirs[ci], fname(i), dirs[ci], "r"+fname(i))
		}},
		// REMOVE takes the renamed names: a rename that did not happen fails here.
		{"remove", "REMOVE; " + where, func(ctx context.Context, c *nfsclient.Client, ci int, i int64) error {
			return c.Remove(ctx, dirs[ci], "r"+fname(i))
		}},
		{"mkdir", "MKDIR; " + where, func(ctx context.Context, c *nfsclient.Client, ci int, i int64) error {
			_, _, err := c.Mkdir(ctx, dirs[ci], "d"+fname(i), nfsclient.SetAttr{Mode: nfsclient.U32(0o755)})
			return err
		}},
		{"rmdir", "RMDIR; " + where, func(ctx context.Context, c *nfsclient.Client, ci int, i int64) error {
			return c.Rmdir(ctx, dirs[ci], "d"+fname(i))
		}},
	}...)
	// A phase that only reads or sets attributes leaves the files as they
	// were, so the phases after it still run when it fails (go-nfs, for
	// one, forgets handles beyond its cache, which fails GETATTR but not
	// RENAME); the pass still ends in error.
	soft := map[string]bool{"stat": true, "getattr": true, "setattr": true}
	var softErrs []error
	for _, st := range steps {
		if err := phase(st.name, st.note, st.f); err != nil {
			if soft[st.name] {
				out = append(out, Result{Workload: st.name, Mode: sh.mode, Error: err.Error()})
				softErrs = append(softErrs, err)
				continue
			}
			return out, errors.Join(append(softErrs, err)...)
		}
		switch st.name {
		case "create":
			if sh.write {
				// Not timed: the data is there, in the right file.
				if err := checkSmall(ctx, cs[0], dirs[0], n, fname); err != nil {
					return out, err
				}
			}
		case "remove", "rmdir":
			if err := checkEmpty(ctx, cs, dirs, st.name); err != nil {
				return out, err
			}
		}
	}
	for i, d := range dirNames {
		if err := cs[i].Rmdir(ctx, b.dir, d); err != nil {
			return out, err
		}
	}
	return out, errors.Join(softErrs...)
}

// writeSmall writes file i's 4 KiB FILE_SYNC, as the Linux client flushes
// a small file on close.
func writeSmall(ctx context.Context, c *nfsclient.Client, fh []byte, i int64) error {
	var buf [blk]byte
	fill(buf[:], i*blk)
	res, err := c.Write(ctx, fh, 0, buf[:], nfsclient.FileSync)
	if err != nil {
		return err
	}
	if res.Count != blk {
		return fmt.Errorf("short WRITE: %d of %d bytes", res.Count, blk)
	}
	if res.Committed != nfsclient.FileSync {
		return fmt.Errorf("WRITE FILE_SYNC answered with stability %d", res.Committed)
	}
	return nil
}

// checkSmall reads back every eighth small file of the one directory
// (one-call mode has one), found by name: a server may have forgotten the
// handle CREATE gave (go-nfs keeps 1,024).
func checkSmall(ctx context.Context, c *nfsclient.Client, dir []byte, n int64, fname func(int64) string) error {
	var want [blk]byte
	for i := int64(0); i < n; i += 8 {
		fh, _, err := c.Lookup(ctx, dir, fname(i))
		if err != nil {
			return fmt.Errorf("looking small file %d up: %w", i, err)
		}
		data, err := readAt(ctx, c, fh, 0, blk)
		if err != nil {
			return fmt.Errorf("reading small file %d back: %w", i, err)
		}
		// Each file holds the block stamped with its own number.
		fill(want[:], i*blk)
		if string(data) != string(want[:]) {
			return fmt.Errorf("small file %d: data read back differs from what was written", i)
		}
	}
	return nil
}

func checkAttr(what string, a *nfsclient.Attr, size uint64, mode uint32) error {
	switch {
	case a == nil:
		return fmt.Errorf("%s: no attributes", what)
	case a.Type != nfsclient.TypeReg || a.Size != size:
		return fmt.Errorf("%s: type %d size %d, want a regular file of %d bytes", what, a.Type, a.Size, size)
	case mode != 0 && a.Mode&0o7777 != mode:
		return fmt.Errorf("%s: mode %04o, want %04o", what, a.Mode&0o7777, mode)
	}
	return nil
}

func checkEmpty(ctx context.Context, cs []*nfsclient.Client, dirs [][]byte, after string) error {
	for i, d := range dirs {
		es, err := cs[i].ReadDir(ctx, d, false)
		if err != nil {
			return err
		}
		for _, e := range es {
			if e.Name != "." && e.Name != ".." {
				return fmt.Errorf("client%d: %q still listed after %s", i, e.Name, strings.ToUpper(after))
			}
		}
	}
	return nil
}

// meta is the metadata phases with many calls in flight: MetaClients
// connections, InFlight calls on each, cfg.Files files, as that many busy
// clients would. "meta" is files per second through create, stat and
// remove together, as before the other phases existed.
func (b *bench) meta(ctx context.Context) ([]Result, error) {
	out, err := b.metaPass(ctx, metaShape{clients: b.cfg.MetaClients, inflight: b.cfg.InFlight, files: b.cfg.Files})
	agg := Result{Workload: "meta", Ops: int64(b.cfg.Files), Conns: b.cfg.MetaClients, InFlight: b.cfg.InFlight,
		Note: "files per second through create+stat+remove; latency: the slowest phase's"}
	n := 0
	for _, r := range out {
		if (r.Workload == "create" || r.Workload == "stat" || r.Workload == "remove") && r.Error == "" {
			n++
			agg.Seconds += r.Seconds
			agg.ServerCPU += r.ServerCPU
			agg.P50us, agg.P99us = max(agg.P50us, r.P50us), max(agg.P99us, r.P99us)
		}
	}
	if n < 3 {
		return out, err // no figure without all three
	}
	agg.OpsPerS = float64(agg.Ops) / agg.Seconds
	return append(out, agg), err
}

// oneMeta is the metadata phases one call at a time on one connection,
// as one program (a CMS saving uploads, a build tool) makes them.
func (b *bench) oneMeta(ctx context.Context) ([]Result, error) {
	return b.metaPass(ctx, metaShape{mode: ModeOne, clients: 1, inflight: 1, files: b.cfg.OneFiles, write: true, walk: true})
}
