package exports

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rwxnfs/rwxnfs/pkg/quota"
)

// Volume lifecycle: create (empty, from a snapshot, from a volume),
// delete (delete, retain, archive), expand, and snapshots.
//
// Crash safety: every operation that takes more than one step on disk is
// an intent record (ROOT/state/intents/*.json, written atomically) →
// steps → commit (removing the record). Each step is idempotent, and the
// record says everything needed to finish or undo it, so Open, before it
// loads volumes, completes or rolls back whatever a crash interrupted
// (recoverIntents). Creations roll back unless their commit point (the
// rename of the fully built staging directory into place) was passed;
// deletions, once recorded, roll forward. Staging and trash directories
// live beside the volumes (same file system, so renames are atomic) with
// names a volume id cannot have (leading dot), so they are never exported.

// ErrorKind classifies lifecycle errors for the admin API.
type ErrorKind int

// Error kinds, mapped one to one to gRPC codes by the admin API.
const (
	KindInvalid      ErrorKind = iota + 1 // InvalidArgument
	KindExists                            // AlreadyExists
	KindNotFound                          // NotFound
	KindPrecondition                      // FailedPrecondition
	KindOutOfRange                        // OutOfRange
)

// Error is a lifecycle error with a kind.
type Error struct {
	Kind ErrorKind
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

func errorf(k ErrorKind, format string, a ...any) error {
	return &Error{Kind: k, Msg: fmt.Sprintf(format, a...)}
}

// KindOf returns the kind of err, or 0.
func KindOf(err error) ErrorKind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	if errors.Is(err, ErrNotFound) {
		return KindNotFound
	}
	if errors.Is(err, ErrExists) {
		return KindExists
	}
	return 0
}

// RootAttrs are the owner and mode given to a new volume's root.
type RootAttrs struct {
	UID  uint32 `json:"uid"`
	GID  uint32 `json:"gid"`
	Mode uint32 `json:"mode"` // permission bits; 0 means 0777
}

// Source is what a volume's content is copied from: one of a snapshot or
// a volume.
type Source struct {
	Snapshot string `json:"snapshot,omitempty"`
	Volume   string `json:"volume,omitempty"`
}

// CreateRequest describes a volume to create.
type CreateRequest struct {
	ID         string
	Capacity   int64 // byte limit; 0: none
	InodeLimit int64 // 0: none
	Options    Options
	Root       RootAttrs
	Source     *Source
}

// ReclaimMode says what deleting a volume does with its data.
type ReclaimMode string

// Reclaim modes.
const (
	ReclaimDelete  ReclaimMode = "delete"  // remove the tree
	ReclaimRetain  ReclaimMode = "retain"  // unexport, keep the tree in ROOT/retained
	ReclaimArchive ReclaimMode = "archive" // unexport, move to ROOT/archive/<id>-<time>
)

// Snapshot is a point-in-time copy of a volume's tree.
type Snapshot struct {
	ID      string      `json:"id"`
	Source  string      `json:"sourceVolume"`
	Created time.Time   `json:"created"`
	Usage   quota.Usage `json:"usage"`
}

func (t *Table) stagingDir(kind, id string) string {
	if kind == "snapshot" {
		return filepath.Join(t.snapshotsDir(), ".staging-"+id)
	}
	return filepath.Join(t.volumesDir(), ".staging-"+id)
}
func (t *Table) snapshotsDir() string       { return filepath.Join(t.root, "snapshots") }
func (t *Table) snapMetaDir() string        { return filepath.Join(t.state, "snapshots") }
func (t *Table) intentsDir() string         { return filepath.Join(t.state, "intents") }
func (t *Table) usagePath(id string) string { return filepath.Join(t.usageDir(), id+".json") }

// intent is a recorded multi-step operation.
type intent struct {
	Op     string      `json:"op"` // create, delete, snapshot, snapdelete
	ID     string      `json:"id"`
	Mode   ReclaimMode `json:"mode,omitempty"`
	Target string      `json:"target,omitempty"` // where a deleted tree goes
}

func (t *Table) intentPath(in intent) string {
	kind := "volume"
	if strings.HasPrefix(in.Op, "snap") {
		kind = "snapshot"
	}
	return filepath.Join(t.intentsDir(), kind+"-"+in.ID+".json")
}

func (t *Table) beginIntent(in intent) error {
	data, _ := json.Marshal(in)
	return writeFileAtomic(t.intentPath(in), data, 0o600)
}

func (t *Table) commitIntent(in intent) error {
	if err := os.Remove(t.intentPath(in)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return syncDir(t.intentsDir())
}

// CrashEnv names the environment variable that makes the process kill
// itself (SIGKILL) at a named step of a lifecycle operation, so tests can
// check recovery from a crash at every step.
const CrashEnv = "RWXNFS_CRASH_AT"

func crashPoint(name string) {
	if os.Getenv(CrashEnv) == name {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(time.Hour)
	}
}

// CreateVolume creates a volume, or returns the existing one if a volume
// of that id was created with the same parameters (existed is then
// true). A volume of that id with other parameters is KindExists.
func (t *Table) CreateVolume(req CreateRequest) (v *Volume, existed bool, err error) {
	if err := ValidateID(req.ID); err != nil {
		return nil, false, errorf(KindInvalid, "%v", err)
	}
	if err := req.Options.Validate(); err != nil {
		return nil, false, errorf(KindInvalid, "%v", err)
	}
	if req.Capacity < 0 || req.InodeLimit < 0 {
		return nil, false, errorf(KindInvalid, "capacity and inode limit must not be negative")
	}
	if req.Root.Mode&^0o7777 != 0 {
		return nil, false, errorf(KindInvalid, "root mode %o has bits beyond 07777", req.Root.Mode)
	}
	if req.Root.Mode == 0 {
		req.Root.Mode = 0o777
	}
	if req.Source != nil && (req.Source.Snapshot == "") == (req.Source.Volume == "") {
		return nil, false, errorf(KindInvalid, "a content source names exactly one of a snapshot or a volume")
	}
	if req.Source != nil && *req.Source == (Source{}) {
		req.Source = nil
	}
	t.opMu.Lock()
	defer t.opMu.Unlock()

	lim := quota.Limits{Bytes: req.Capacity, Inodes: req.InodeLimit}
	if old, ok := t.Volume(req.ID); ok {
		if old.Limits == lim && reflect.DeepEqual(old.Options, req.Options) && old.RootAttrs == req.Root && reflect.DeepEqual(old.Source, req.Source) {
			return old, true, nil
		}
		return nil, false, errorf(KindExists, "volume %s exists with different parameters (capacity %d, inode limit %d)", req.ID, old.Limits.Bytes, old.Limits.Inodes)
	}

	var src string
	if s := req.Source; s != nil {
		var srcUsage quota.Usage
		if s.Snapshot != "" {
			snap, err := t.snapshot(s.Snapshot)
			if err != nil {
				return nil, false, err
			}
			src, srcUsage = filepath.Join(t.snapshotsDir(), snap.ID), snap.Usage
		} else {
			sv, ok := t.Volume(s.Volume)
			if !ok {
				return nil, false, errorf(KindNotFound, "source volume %s not found", s.Volume)
			}
			src, srcUsage = sv.Dir(), sv.Quota.Usage()
		}
		if req.Capacity > 0 && srcUsage.Bytes > req.Capacity {
			return nil, false, errorf(KindOutOfRange, "the source holds %d bytes, more than the requested capacity %d", srcUsage.Bytes, req.Capacity)
		}
		if req.InodeLimit > 0 && srcUsage.Inodes > req.InodeLimit {
			return nil, false, errorf(KindOutOfRange, "the source holds %d inodes, more than the requested inode limit %d", srcUsage.Inodes, req.InodeLimit)
		}
	}

	in := intent{Op: "create", ID: req.ID}
	staging := t.stagingDir("volume", req.ID)
	if err := t.beginIntent(in); err != nil {
		return nil, false, err
	}
	crashPoint("create:intent")
	fail := func(err error) (*Volume, bool, error) {
		t.rollbackCreate(in)
		return nil, false, err
	}
	os.RemoveAll(staging)
	if err := os.Mkdir(staging, 0o700); err != nil {
		return fail(err)
	}
	crashPoint("create:mkdir")
	var usage quota.Usage
	if src != "" {
		usage, err = copyTree(src, staging)
		if err != nil {
			return fail(fmt.Errorf("copying %s: %w", src, err))
		}
		if err := syncFS(staging); err != nil {
			return fail(err)
		}
	} else {
		if err := os.Chown(staging, int(req.Root.UID), int(req.Root.GID)); err != nil {
			return fail(err)
		}
		if err := os.Chmod(staging, fs.FileMode(req.Root.Mode&0o777)|modeBits(req.Root.Mode)); err != nil {
			return fail(err)
		}
	}
	crashPoint("create:populated")
	v = &Volume{ID: req.ID, Created: time.Now().UTC(), Options: req.Options, Limits: lim, RootAttrs: req.Root, Source: req.Source}
	v.FSID = t.newFSID()
	data, _ := json.Marshal(persistedUsage{Bytes: usage.Bytes, Inodes: usage.Inodes})
	if err := writeFileAtomic(t.usagePath(req.ID), data, 0o600); err != nil {
		return fail(err)
	}
	if err := t.saveMeta(v); err != nil {
		return fail(err)
	}
	crashPoint("create:meta")
	// Commit point: the finished tree appears under its name.
	if err := os.Rename(staging, filepath.Join(t.volumesDir(), req.ID)); err != nil {
		return fail(err)
	}
	if err := syncDir(t.volumesDir()); err != nil {
		return fail(err)
	}
	crashPoint("create:renamed")
	if err := t.attach(v); err != nil {
		return nil, false, err
	}
	if err := t.commitIntent(in); err != nil {
		return nil, false, err
	}
	t.log.Info("volume created", "volume", v.ID, "capacity", lim.Bytes, "inodeLimit", lim.Inodes, "source", req.Source, "usedBytes", usage.Bytes, "squash", v.Options.Squash, "readOnly", v.Options.ReadOnly)
	return v, false, nil
}

type persistedUsage struct {
	Bytes  int64 `json:"bytes"`
	Inodes int64 `json:"inodes"`
}

func modeBits(m uint32) fs.FileMode {
	var b fs.FileMode
	if m&unix.S_ISUID != 0 {
		b |= fs.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		b |= fs.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		b |= fs.ModeSticky
	}
	return b
}

func syncFS(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Syncfs(fd)
}

func (t *Table) newFSID() uint64 {
	for {
		var b [8]byte
		randRead(b[:])
		id := uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 | uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
		if id != 0 && t.VolumeByFSID(id) == nil {
			return id
		}
	}
}

func (t *Table) saveMeta(v *Volume) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(t.metaDir(), v.ID+".json"), data, 0o600)
}

// rollbackCreate undoes an unfinished creation (nothing if it was
// committed, i.e. its tree is in place).
func (t *Table) rollbackCreate(in intent) error {
	if _, err := os.Lstat(filepath.Join(t.volumesDir(), in.ID)); err == nil {
		return t.commitIntent(in)
	}
	if err := os.RemoveAll(t.stagingDir("volume", in.ID)); err != nil {
		return err
	}
	for _, p := range []string{filepath.Join(t.metaDir(), in.ID+".json"), t.usagePath(in.ID)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	syncDir(t.metaDir())
	return t.commitIntent(in)
}

// DeleteResult says where a deleted volume's data went.
type DeleteResult struct {
	Path string // retained or archived tree; "" when deleted
}

// DeleteVolume unexports a volume and reclaims it per mode. Clients still
// holding its handles get NFS3ERR_STALE: its fsid is no longer known.
func (t *Table) DeleteVolume(id string, mode ReclaimMode) (DeleteResult, error) {
	if mode == "" {
		mode = ReclaimDelete
	}
	switch mode {
	case ReclaimDelete, ReclaimRetain, ReclaimArchive:
	default:
		return DeleteResult{}, errorf(KindInvalid, "reclaim mode must be delete, retain or archive, not %q", mode)
	}
	if err := ValidateID(id); err != nil {
		return DeleteResult{}, errorf(KindInvalid, "%v", err)
	}
	t.opMu.Lock()
	defer t.opMu.Unlock()
	v, ok := t.Volume(id)
	if !ok {
		return DeleteResult{}, errorf(KindNotFound, "volume %s not found", id)
	}
	stamp := time.Now().UTC().Format("20060102T150405.000000000Z")
	in := intent{Op: "delete", ID: id, Mode: mode}
	switch mode {
	case ReclaimDelete:
		in.Target = filepath.Join(t.volumesDir(), ".trash-"+id+"-"+stamp)
	case ReclaimRetain:
		in.Target = filepath.Join(t.root, "retained", id)
		if _, err := os.Lstat(in.Target); err == nil {
			in.Target += "-" + stamp
		}
	case ReclaimArchive:
		in.Target = filepath.Join(t.root, "archive", id+"-"+stamp)
	}
	if err := os.MkdirAll(filepath.Dir(in.Target), 0o700); err != nil {
		return DeleteResult{}, err
	}
	if err := t.beginIntent(in); err != nil {
		return DeleteResult{}, err
	}
	crashPoint("delete:intent")
	t.detach(v)
	if err := t.finishDelete(in); err != nil {
		return DeleteResult{}, err
	}
	t.log.Info("volume deleted", "volume", id, "reclaim", mode, "path", in.Target)
	if mode == ReclaimDelete {
		return DeleteResult{}, nil
	}
	return DeleteResult{Path: in.Target}, nil
}

// finishDelete runs (or, in recovery, re-runs) a deletion's steps; each
// is idempotent.
func (t *Table) finishDelete(in intent) error {
	dir := filepath.Join(t.volumesDir(), in.ID)
	if _, err := os.Lstat(dir); err == nil {
		if err := os.Rename(dir, in.Target); err != nil {
			return err
		}
		syncDir(t.volumesDir())
		syncDir(filepath.Dir(in.Target))
	}
	crashPoint("delete:renamed")
	meta := filepath.Join(t.metaDir(), in.ID+".json")
	if in.Mode != ReclaimDelete {
		// Keep the metadata beside the data, to re-import it by hand.
		if data, err := os.ReadFile(meta); err == nil {
			if err := writeFileAtomic(in.Target+".json", data, 0o600); err != nil {
				return err
			}
		}
	}
	for _, p := range []string{meta, t.usagePath(in.ID)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	syncDir(t.metaDir())
	crashPoint("delete:meta")
	if in.Mode == ReclaimDelete {
		if err := os.RemoveAll(in.Target); err != nil {
			return err
		}
	}
	return t.commitIntent(in)
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

// OnVolumeGone registers f to run when a volume stops being served
// (deleted, retained or archived), so that state kept elsewhere about it,
// such as its locks, goes with it.
func (t *Table) OnVolumeGone(f func(id string)) {
	t.mu.Lock()
	t.onDetach = append(t.onDetach, f)
	t.mu.Unlock()
}

// ExpandVolume sets a volume's byte limit. Mounted clients see it at
// once (the next WRITE and FSSTAT use it). A limit below what the volume
// holds is refused.
func (t *Table) ExpandVolume(id string, capacity int64) (*Volume, error) {
	if capacity <= 0 {
		return nil, errorf(KindInvalid, "capacity must be positive")
	}
	t.opMu.Lock()
	defer t.opMu.Unlock()
	v, ok := t.Volume(id)
	if !ok {
		return nil, errorf(KindNotFound, "volume %s not found", id)
	}
	if used := v.Quota.Usage().Bytes; capacity < used {
		return nil, errorf(KindPrecondition, "volume %s holds %d bytes, more than the new capacity %d", id, used, capacity)
	}
	if v.Limits.Bytes == capacity {
		return v, nil
	}
	nv := *v
	nv.Limits.Bytes = capacity
	if err := t.saveMeta(&nv); err != nil {
		return nil, err
	}
	old := v.Limits.Bytes
	t.mu.Lock()
	v.Limits.Bytes = capacity
	t.mu.Unlock()
	v.Quota.SetLimits(v.Limits)
	t.log.Info("volume capacity changed", "volume", id, "from", old, "to", capacity)
	return v, nil
}

// CreateSnapshot copies a volume's tree to ROOT/snapshots/<id>. The copy
// is taken while the volume is served: each file is copied as it is when
// read, so the snapshot is crash-consistent per file at best (a file being
// written may be caught half-written; files are not consistent with each
// other). Idempotent: the same id and source return the existing one.
func (t *Table) CreateSnapshot(id, source string) (*Snapshot, bool, error) {
	if err := ValidateID(id); err != nil {
		return nil, false, errorf(KindInvalid, "%v", err)
	}
	t.opMu.Lock()
	defer t.opMu.Unlock()
	if s, err := t.snapshot(id); err == nil {
		if s.Source == source {
			return s, true, nil
		}
		return nil, false, errorf(KindExists, "snapshot %s exists for volume %s", id, s.Source)
	}
	v, ok := t.Volume(source)
	if !ok {
		return nil, false, errorf(KindNotFound, "source volume %s not found", source)
	}
	in := intent{Op: "snapshot", ID: id}
	staging := t.stagingDir("snapshot", id)
	if err := os.MkdirAll(t.snapshotsDir(), 0o700); err != nil {
		return nil, false, err
	}
	if err := t.beginIntent(in); err != nil {
		return nil, false, err
	}
	fail := func(err error) (*Snapshot, bool, error) {
		t.rollbackSnapshot(in)
		return nil, false, err
	}
	os.RemoveAll(staging)
	if err := os.Mkdir(staging, 0o700); err != nil {
		return fail(err)
	}
	usage, err := copyTree(v.Dir(), staging)
	if err != nil {
		return fail(fmt.Errorf("copying volume %s: %w", source, err))
	}
	if err := syncFS(staging); err != nil {
		return fail(err)
	}
	crashPoint("snapshot:copied")
	s := &Snapshot{ID: id, Source: source, Created: time.Now().UTC(), Usage: usage}
	data, _ := json.MarshalIndent(s, "", "  ")
	if err := writeFileAtomic(filepath.Join(t.snapMetaDir(), id+".json"), data, 0o600); err != nil {
		return fail(err)
	}
	crashPoint("snapshot:meta")
	if err := os.Rename(staging, filepath.Join(t.snapshotsDir(), id)); err != nil {
		return fail(err)
	}
	syncDir(t.snapshotsDir())
	if err := t.commitIntent(in); err != nil {
		return nil, false, err
	}
	t.log.Info("snapshot created", "snapshot", id, "volume", source, "bytes", usage.Bytes, "inodes", usage.Inodes)
	return s, false, nil
}

func (t *Table) rollbackSnapshot(in intent) error {
	if _, err := os.Lstat(filepath.Join(t.snapshotsDir(), in.ID)); err == nil {
		return t.commitIntent(in)
	}
	if err := os.RemoveAll(t.stagingDir("snapshot", in.ID)); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(t.snapMetaDir(), in.ID+".json")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return t.commitIntent(in)
}

// DeleteSnapshot removes a snapshot; volumes made from it are unaffected
// (they are copies).
func (t *Table) DeleteSnapshot(id string) error {
	if err := ValidateID(id); err != nil {
		return errorf(KindInvalid, "%v", err)
	}
	t.opMu.Lock()
	defer t.opMu.Unlock()
	if _, err := t.snapshot(id); err != nil {
		return err
	}
	in := intent{Op: "snapdelete", ID: id, Target: filepath.Join(t.snapshotsDir(), ".trash-"+id+"-"+strconv.FormatInt(time.Now().UnixNano(), 10))}
	if err := t.beginIntent(in); err != nil {
		return err
	}
	if err := t.finishSnapDelete(in); err != nil {
		return err
	}
	t.log.Info("snapshot deleted", "snapshot", id)
	return nil
}

func (t *Table) finishSnapDelete(in intent) error {
	dir := filepath.Join(t.snapshotsDir(), in.ID)
	if _, err := os.Lstat(dir); err == nil {
		if err := os.Rename(dir, in.Target); err != nil {
			return err
		}
		syncDir(t.snapshotsDir())
	}
	crashPoint("snapdelete:renamed")
	if err := os.Remove(filepath.Join(t.snapMetaDir(), in.ID+".json")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.RemoveAll(in.Target); err != nil {
		return err
	}
	return t.commitIntent(in)
}

func (t *Table) snapshot(id string) (*Snapshot, error) {
	data, err := os.ReadFile(filepath.Join(t.snapMetaDir(), id+".json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errorf(KindNotFound, "snapshot %s not found", id)
	}
	if err != nil {
		return nil, err
	}
	var s Snapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("snapshot metadata %s: %w", id, err)
	}
	return &s, nil
}

// Snapshot returns a snapshot by id.
func (t *Table) Snapshot(id string) (*Snapshot, error) { return t.snapshot(id) }

// Snapshots lists snapshots, of one source volume if source is not "".
func (t *Table) Snapshots(source string) ([]*Snapshot, error) {
	ents, err := os.ReadDir(t.snapMetaDir())
	if err != nil {
		return nil, err
	}
	var out []*Snapshot
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(id, ".") {
			continue
		}
		s, err := t.snapshot(id)
		if err != nil {
			continue
		}
		if source == "" || s.Source == source {
			out = append(out, s)
		}
	}
	return out, nil
}

// SnapshotDir is where a snapshot's tree is.
func (t *Table) SnapshotDir(id string) string { return filepath.Join(t.snapshotsDir(), id) }

// recoverIntents finishes or undoes the operations a crash interrupted.
// It runs in Open before volumes are loaded, so nothing half-made is ever
// exported.
func (t *Table) recoverIntents() error {
	for _, d := range []string{t.intentsDir(), t.snapMetaDir(), t.snapshotsDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	ents, err := os.ReadDir(t.intentsDir())
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(t.intentsDir(), e.Name()))
		if err != nil {
			return err
		}
		var in intent
		if err := json.Unmarshal(data, &in); err != nil || ValidateID(in.ID) != nil {
			return fmt.Errorf("intent record %s is unreadable (%v): inspect and remove it", e.Name(), err)
		}
		switch in.Op {
		case "create":
			err = t.rollbackCreate(in)
		case "delete":
			err = t.finishDelete(in)
		case "snapshot":
			err = t.rollbackSnapshot(in)
		case "snapdelete":
			err = t.finishSnapDelete(in)
		default:
			err = fmt.Errorf("unknown operation %q", in.Op)
		}
		if err != nil {
			return fmt.Errorf("recovering %s: %w", e.Name(), err)
		}
		t.log.Warn("recovered an operation interrupted by a crash", "op", in.Op, "id", in.ID, "target", in.Target)
	}
	return nil
}
