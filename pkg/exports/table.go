// Package exports keeps the volumes nfsd serves: their directories on disk
// (ROOT/volumes/<id>), their metadata and export options (ROOT/state,
// never exported), the file handles that name files inside them, and
// their lifecycle (create, delete, expand, update, snapshots), made
// crash-safe by intent records (intent.go).
package exports

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rwxnfs/rwxnfs/internal/atomicfile"
	"github.com/rwxnfs/rwxnfs/internal/secret"
	"github.com/rwxnfs/rwxnfs/pkg/quota"
)

// Table is the set of volumes and their handles.
type Table struct {
	root   string
	state  string
	log    *slog.Logger
	sealer handleSealer

	mu     sync.RWMutex
	byID   map[string]*Volume
	byFSID map[uint64]*Volume

	nodes    *nodeCache
	usage    *quota.Store // each volume's saved usage
	onDetach []func(id string)

	opMu      sync.Mutex // serialises the metadata steps of lifecycle operations
	jobs      jobs       // copies in progress (guarded by opMu)
	copyHook  func(rel string)
	stepHook  func(step string) // see step
	stopFlush chan struct{}
	flushDone chan struct{}
	closeOnce sync.Once
}

// Config says where the table lives.
type Config struct {
	Root string // ROOT: volumes in ROOT/volumes, state in ROOT/state
	Log  *slog.Logger
	// MaxOpenNodes bounds the cache of open nodes (default: by memory and
	// the descriptor limit, DefaultMaxOpenNodes).
	MaxOpenNodes int
	// UsageFlushInterval is how often changed usage is saved (default 2s).
	UsageFlushInterval time.Duration

	// stepHook, set by tests, runs at each named step of a multi-step
	// operation (Table.step), those Open's recovery re-runs included.
	stepHook func(step string)
}

// Open loads (or initialises) the table under cfg.Root.
func Open(cfg Config) (*Table, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.MaxOpenNodes == 0 {
		cfg.MaxOpenNodes = DefaultMaxOpenNodes()
	}
	root, err := filepath.Abs(cfg.Root)
	if err != nil {
		return nil, err
	}
	t := &Table{
		root:   root,
		state:  filepath.Join(root, "state"),
		log:    cfg.Log,
		byID:   make(map[string]*Volume),
		byFSID: make(map[uint64]*Volume),
		nodes:  newNodeCache(cfg.MaxOpenNodes),

		stepHook: cfg.stepHook,
	}
	for _, d := range []string{root, t.volumesDir(), t.state, t.metaDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	if err := t.closeTrees(); err != nil {
		return nil, err
	}
	if err := checkHandles(t.volumesDir()); err != nil {
		return nil, err
	}
	if t.usage, err = quota.OpenStore(t.usageDir()); err != nil {
		return nil, err
	}
	key, err := loadOrCreateKey(filepath.Join(t.state, "handle.key"))
	if err != nil {
		return nil, err
	}
	t.sealer = newSealer(key)
	t.jobs.init()
	resume, err := t.recoverIntents()
	if err != nil {
		t.Close()
		return nil, err
	}
	if err := t.load(); err != nil {
		t.Close()
		return nil, err
	}
	t.resumeSnapshots(resume)
	if cfg.UsageFlushInterval <= 0 {
		cfg.UsageFlushInterval = 2 * time.Second
	}
	t.stopFlush, t.flushDone = make(chan struct{}), make(chan struct{})
	go t.flushLoop(cfg.UsageFlushInterval, t.stopFlush, t.flushDone)
	return t, nil
}

// closeTrees makes the directories that hold clients' files (and the
// state directory, which holds the handle key) root's alone, mode 0700,
// tightening them if an older nfsd or an operator left them open. A
// volume's root is usually 0777 and clients (root ones, by default) make
// what they like inside; with a way in for local users of the server,
// a client could hand them set-uid programs, device nodes or other
// users' data. nfsd itself runs as root and never goes through these
// directories as a client (every client call starts from a descriptor
// inside the volume), so nothing it serves changes.
func (t *Table) closeTrees() error {
	for _, d := range []string{t.volumesDir(), t.snapshotsDir(), t.retainedDir(), t.archiveDir(), t.state} {
		var st unix.Stat_t
		err := unix.Lstat(d, &st)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", d, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return fmt.Errorf("%s is not a directory", d)
		}
		if st.Mode&0o7777 == 0o700 && st.Uid == 0 && st.Gid == 0 {
			continue
		}
		if err := unix.Lchown(d, 0, 0); err != nil {
			return fmt.Errorf("%s: %w", d, err)
		}
		if err := unix.Chmod(d, 0o700); err != nil {
			return fmt.Errorf("%s: %w", d, err)
		}
		t.log.Warn("directory was open to other users: made it root's alone (0700)", "dir", d, "was", fmt.Sprintf("%04o %d:%d", st.Mode&0o7777, st.Uid, st.Gid))
	}
	return nil
}

// checkHandles makes sure the backing file system can give and take
// persistent file handles; without them no handle would survive a
// restart, so nfsd refuses to start rather than hand out handles that
// will go stale.
func checkHandles(dir string) error {
	fh, _, err := unix.NameToHandleAt(unix.AT_FDCWD, dir, 0)
	if err != nil {
		return fmt.Errorf("%s: the file system cannot give persistent file handles (name_to_handle_at: %v); use ext4, xfs, btrfs or tmpfs", dir, err)
	}
	if fh.Size() > maxKernelHandle {
		return fmt.Errorf("%s: the file system's handles (%d bytes) do not fit in an NFSv3 handle", dir, fh.Size())
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	fd2, err := unix.OpenByHandleAt(fd, fh, unix.O_PATH|unix.O_CLOEXEC)
	if err != nil {
		if errors.Is(err, unix.EPERM) {
			return fmt.Errorf("open_by_handle_at needs CAP_DAC_READ_SEARCH: run nfsd as root (%v)", err)
		}
		return fmt.Errorf("%s: open_by_handle_at: %v", dir, err)
	}
	unix.Close(fd2)
	return nil
}

func loadOrCreateKey(path string) ([]byte, error) {
	key, err := os.ReadFile(path)
	if err == nil {
		// Whoever reads the key can seal handles (contain.go limits
		// what they reach, but not within the volumes).
		if err := secret.Private(path, "handle key"); err != nil {
			return nil, err
		}
		if len(key) < 32 {
			return nil, fmt.Errorf("%s: handle key too short (%d bytes)", path, len(key))
		}
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	key = make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := atomicfile.Write(path, key, 0o600); err != nil {
		return nil, err
	}
	return key, nil
}

// load reads every volume's metadata and opens its root. A volume
// directory without metadata (say, a crash between mkdir and the metadata
// write, or a directory an operator made) is adopted with default options;
// metadata without a directory is reported and skipped.
func (t *Table) load() error {
	metas, err := os.ReadDir(t.metaDir())
	if err != nil {
		return err
	}
	seen := make(map[string]bool)
	for _, m := range metas {
		name := m.Name()
		if !strings.HasSuffix(name, ".json") || strings.HasPrefix(name, ".") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(t.metaDir(), name))
		if err != nil {
			return err
		}
		var m volumeMeta
		if err := json.Unmarshal(data, &m); err != nil {
			return fmt.Errorf("volume metadata %s: %w", name, err)
		}
		v := &m.Volume
		if err := ValidateID(v.ID); err != nil || v.ID+".json" != name {
			return fmt.Errorf("volume metadata %s: id %q does not match its file", name, v.ID)
		}
		if v.RootAttrs.Mode == 0 {
			// Written before Table.Create took CreateVolume's path: a
			// mode of 0 meant 0777, as it does in a CreateRequest.
			v.RootAttrs.Mode = 0o777
		}
		seen[v.ID] = true
		if v.Quota, err = t.usage.Open(v.ID, m.Limits); err != nil {
			return fmt.Errorf("volume %s usage: %w", v.ID, err)
		}
		if err := t.attach(v); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				t.log.Error("volume has metadata but no directory; not exported", "volume", v.ID, "dir", filepath.Join(t.volumesDir(), v.ID))
				continue
			}
			return err
		}
	}
	dirs, err := os.ReadDir(t.volumesDir())
	if err != nil {
		return err
	}
	for _, d := range dirs {
		if !d.IsDir() || seen[d.Name()] || ValidateID(d.Name()) != nil {
			continue
		}
		t.log.Warn("adopting volume directory without metadata", "volume", d.Name())
		if _, err := t.adopt(d.Name()); err != nil {
			return fmt.Errorf("adopting volume directory %s: %w", d.Name(), err)
		}
	}
	return nil
}

// attach opens a volume's root and adds it, with its accountant, to the
// table.
func (t *Table) attach(v *Volume) error {
	v.dir = filepath.Join(t.volumesDir(), v.ID)
	// Not O_PATH: open_by_handle_at takes its mount descriptor only from
	// a real open file.
	fd, err := unix.Open(v.dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: v.dir, Err: err}
	}
	kh, _, err := unix.NameToHandleAt(fd, "", unix.AT_EMPTY_PATH)
	if err != nil {
		unix.Close(fd)
		return fmt.Errorf("%s: name_to_handle_at: %w", v.dir, err)
	}
	h, err := t.sealer.seal(v.FSID, kh.Type(), kh.Bytes())
	if err != nil {
		unix.Close(fd)
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return err
	}
	v.root = &Node{Vol: v, Handle: h, fd: fd, ktype: kh.Type(), kh: append([]byte(nil), kh.Bytes()...), pinned: true, ioFD: -1, dev: st.Dev, ino: st.Ino, path: new(atomic.Pointer[string])}
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.byFSID[v.FSID]; ok && old.ID != v.ID {
		unix.Close(fd)
		return fmt.Errorf("volumes %s and %s share fsid %d", old.ID, v.ID, v.FSID)
	}
	t.byID[v.ID] = v
	t.byFSID[v.FSID] = v
	return nil
}

// detach removes a volume from the table and closes its descriptors.
func (t *Table) detach(v *Volume) {
	t.mu.Lock()
	delete(t.byID, v.ID)
	delete(t.byFSID, v.FSID)
	t.mu.Unlock()
	t.nodes.dropVolume(v)
	v.Quota.Retire()
	if v.root != nil {
		v.root.closeFDs()
	}
	t.mu.RLock()
	hooks := t.onDetach
	t.mu.RUnlock()
	for _, f := range hooks {
		f(v.ID)
	}
}

// replace serves nv in old's place. Volumes are never changed in place
// where NFS calls read them without a lock: nv is a new record sharing
// old's root descriptor and accountant, and nodes cached under old are
// dropped so that the next call through any handle finds nv (Resolve also
// refuses a cached node of a replaced record). Handles stay valid: the
// fsid and the tree are the same.
func (t *Table) replace(old, nv *Volume) {
	r := old.root
	nv.dir = old.dir
	nv.root = &Node{Vol: nv, Handle: r.Handle, fd: r.fd, ktype: r.ktype, kh: r.kh, pinned: true, ioFD: -1, dev: r.dev, ino: r.ino, path: r.path}
	t.mu.Lock()
	t.byID[nv.ID] = nv
	t.byFSID[nv.FSID] = nv
	t.mu.Unlock()
	t.nodes.dropVolume(old)
}

// OnVolumeGone registers f to run when a volume stops being served
// (deleted, retained or archived), so that state kept elsewhere about it,
// such as its locks, goes with it.
func (t *Table) OnVolumeGone(f func(id string)) {
	t.mu.Lock()
	t.onDetach = append(t.onDetach, f)
	t.mu.Unlock()
}

// Volume returns a volume by id.
func (t *Table) Volume(id string) (*Volume, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	v, ok := t.byID[id]
	return v, ok
}

// MustVolume returns a volume that must exist (for tests and start-up).
func (t *Table) MustVolume(id string) *Volume {
	v, ok := t.Volume(id)
	if !ok {
		panic("exports: no volume " + id)
	}
	return v
}

// VolumeByFSID returns the volume with an fsid, or nil.
func (t *Table) VolumeByFSID(fsid uint64) *Volume {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.byFSID[fsid]
}

// ByPath returns the volume mounted at a path such as /volumes/<id>, and
// the components of a subdirectory below it, if the path names one
// (/volumes/<id>/a/b).
func (t *Table) ByPath(p string) (*Volume, []string, bool) {
	rest, ok := strings.CutPrefix(p, "/volumes/")
	if !ok {
		return nil, nil, false
	}
	var sub []string
	for _, c := range strings.Split(rest, "/") {
		if c != "" {
			sub = append(sub, c)
		}
	}
	if len(sub) == 0 {
		return nil, nil, false
	}
	v, ok := t.Volume(sub[0])
	return v, sub[1:], ok
}

// Volumes returns every volume, sorted by id.
func (t *Table) Volumes() []*Volume {
	t.mu.RLock()
	out := make([]*Volume, 0, len(t.byID))
	for _, v := range t.byID {
		out = append(out, v)
	}
	t.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Present reports whether a served volume's directory is still where it
// belongs (an operator may have removed or moved it on the server).
func (t *Table) Present(v *Volume) bool {
	var a, b unix.Stat_t
	if unix.Fstat(v.root.fd, &a) != nil || a.Nlink == 0 {
		return false
	}
	if unix.Lstat(v.dir, &b) != nil {
		return false
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}

// Close saves usage and releases every open descriptor.
func (t *Table) Close() error {
	t.closeOnce.Do(func() {
		t.jobs.stop()
		if t.stopFlush != nil {
			close(t.stopFlush)
			<-t.flushDone
		}
		t.FlushUsage()
	})
	t.nodes.closeAll()
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, v := range t.byID {
		if v.root != nil {
			v.root.closeFDs()
		}
	}
	return nil
}
