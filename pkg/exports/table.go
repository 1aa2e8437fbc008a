// Package exports keeps the volumes nfsd serves: their directories on disk
// (ROOT/volumes/<id>), their metadata and export options (ROOT/state,
// never exported), and the file handles that name files inside them.
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
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rwxnfs/rwxnfs/internal/atomicfile"
	"github.com/rwxnfs/rwxnfs/pkg/quota"
)

// Volume is one exported directory.
type Volume struct {
	ID      string    `json:"id"`
	FSID    uint64    `json:"fsid"`
	Created time.Time `json:"created"`
	Options Options   `json:"options"`
	// Limits are the volume's quota (zero: none); Quota accounts and
	// enforces them.
	Limits quota.Limits  `json:"limits"`
	Quota  *quota.Volume `json:"-"`
	// RootAttrs and Source are what the volume was created with, kept
	// so a repeated CreateVolume can be recognised as the same request.
	RootAttrs RootAttrs `json:"root"`
	Source    *Source   `json:"source,omitempty"`
	// Name is what its creator calls it (CSI: the PV name) if not ID.
	Name string `json:"name,omitempty"`
	// Reclaim is what deleting it does unless the caller says ("": delete).
	Reclaim ReclaimMode `json:"reclaim,omitempty"`

	dir  string
	root *Node // pinned: never evicted
}

// Dir returns the volume's directory on the server.
func (v *Volume) Dir() string { return v.dir }

// Path returns the path clients mount.
func (v *Volume) Path() string { return "/volumes/" + v.ID }

// Root returns the volume's root directory node.
func (v *Volume) Root() *Node { return v.root }

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
	onDetach []func(id string)

	opMu      sync.Mutex // serialises the metadata steps of lifecycle operations
	jobs      jobs       // copies in progress (guarded by opMu)
	copyHook  func(rel string)
	stopFlush chan struct{}
	flushDone chan struct{}
	closeOnce sync.Once
}

// Config says where the table lives.
type Config struct {
	Root string // ROOT: volumes in ROOT/volumes, state in ROOT/state
	Log  *slog.Logger
	// MaxOpenNodes bounds the cache of open file descriptors (default 8192).
	MaxOpenNodes int
	// UsageFlushInterval is how often changed usage is saved (default 2s).
	UsageFlushInterval time.Duration
}

var validID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ValidateID checks a volume id: 1-128 of [A-Za-z0-9._-], not starting
// with a dot or dash, so it is always a single, visible path component.
func ValidateID(id string) error {
	if !validID.MatchString(id) {
		return fmt.Errorf("invalid volume id %q: want 1-128 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit", id)
	}
	return nil
}

// Open loads (or initialises) the table under cfg.Root.
func Open(cfg Config) (*Table, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.MaxOpenNodes == 0 {
		cfg.MaxOpenNodes = 8192
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
	}
	for _, d := range []string{root, t.volumesDir(), t.state, t.metaDir(), t.usageDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	// The state directory holds the handle key: nobody but root reads it.
	if err := os.Chmod(t.state, 0o700); err != nil {
		return nil, err
	}
	if err := checkHandles(t.volumesDir()); err != nil {
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

func (t *Table) volumesDir() string { return filepath.Join(t.root, "volumes") }
func (t *Table) metaDir() string    { return filepath.Join(t.state, "volumes") }
func (t *Table) usageDir() string   { return filepath.Join(t.state, "usage") }

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
	if err := writeFileAtomic(path, key, 0o600); err != nil {
		return nil, err
	}
	return key, nil
}

// writeFileAtomic and syncDir are the table's names for atomicfile's
// calls (the lifecycle code uses them throughout).
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	return atomicfile.Write(path, data, perm)
}

func syncDir(dir string) error { return atomicfile.SyncDir(dir) }

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
		var v Volume
		if err := json.Unmarshal(data, &v); err != nil {
			return fmt.Errorf("volume metadata %s: %w", name, err)
		}
		if err := ValidateID(v.ID); err != nil || v.ID+".json" != name {
			return fmt.Errorf("volume metadata %s: id %q does not match its file", name, v.ID)
		}
		seen[v.ID] = true
		if err := t.attach(&v); err != nil {
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
		if _, err := t.create(d.Name(), DefaultOptions(), true); err != nil {
			return err
		}
	}
	return nil
}

// attach opens a volume's root and adds it to the table.
func (t *Table) attach(v *Volume) error {
	v.dir = filepath.Join(t.volumesDir(), v.ID)
	if v.Quota == nil {
		q, err := quota.New(filepath.Join(t.usageDir(), v.ID+".json"), v.Limits)
		if err != nil {
			return fmt.Errorf("volume %s usage: %w", v.ID, err)
		}
		v.Quota = q
	}
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
	v.root = &Node{Vol: v, Handle: h, fd: fd, ktype: kh.Type(), kh: append([]byte(nil), kh.Bytes()...), pinned: true, ioFD: -1}
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

// ErrExists is returned when creating a volume that already exists.
var ErrExists = errors.New("exports: volume already exists")

// ErrNotFound is returned for an unknown volume.
var ErrNotFound = errors.New("exports: no such volume")

// Create makes a new, empty volume. The directory is created first and the
// metadata written last, so a crash in between leaves a directory that the
// next start adopts.
func (t *Table) Create(id string, opts Options) (*Volume, error) {
	return t.create(id, opts, false)
}

func (t *Table) create(id string, opts Options, adopt bool) (*Volume, error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	t.mu.RLock()
	_, exists := t.byID[id]
	t.mu.RUnlock()
	if exists {
		return nil, ErrExists
	}
	dir := filepath.Join(t.volumesDir(), id)
	if !adopt {
		if err := os.Mkdir(dir, 0o777); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return nil, ErrExists
			}
			return nil, err
		}
		// The root is world-writable, like a fresh PVC, until the
		// admin API sets an owner and mode for it.
		if err := os.Chmod(dir, 0o777); err != nil {
			return nil, err
		}
		if err := syncDir(t.volumesDir()); err != nil {
			return nil, err
		}
	}
	v := &Volume{ID: id, Created: time.Now().UTC(), Options: opts, FSID: t.newFSID()}
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(t.metaDir(), id+".json"), data, 0o600); err != nil {
		return nil, err
	}
	if err := t.attach(v); err != nil {
		return nil, err
	}
	t.log.Info("volume created", "volume", id, "dir", dir, "squash", opts.Squash, "readOnly", opts.ReadOnly, "clients", len(opts.Clients))
	return v, nil
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
