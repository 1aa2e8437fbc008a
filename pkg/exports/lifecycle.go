package exports

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
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
	KindAborted                           // Aborted: the same name is busy, retry
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
	ID string
	// Name is what the creator calls the volume (CSI: the PV name), if
	// not its id; a repeat must give the same.
	Name       string
	Capacity   CapacityRange // the byte limit
	InodeLimit int64         // 0: none
	Options    Options
	Root       RootAttrs
	Source     *Source
	Reclaim    ReclaimMode // what DeleteVolume does by default ("": delete)
}

// ReclaimMode says what deleting a volume does with its data.
type ReclaimMode string

// Reclaim modes.
const (
	ReclaimDelete  ReclaimMode = "delete"  // remove the tree
	ReclaimRetain  ReclaimMode = "retain"  // unexport, keep the tree in ROOT/retained
	ReclaimArchive ReclaimMode = "archive" // unexport, move to ROOT/archive/<id>-<time>
)

// Snapshot is a copy of a volume's tree, taken in the background.
type Snapshot struct {
	ID      string      `json:"id"`
	Source  string      `json:"sourceVolume"`
	Created time.Time   `json:"created"` // when it was asked for
	Usage   quota.Usage `json:"usage"`   // of the copy, once ready
	// Pending is true until the copy is complete; Error says why the
	// last attempt failed (a repeated CreateSnapshot retries).
	Pending bool   `json:"pending,omitempty"`
	Error   string `json:"error,omitempty"`
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

// CapacityRange bounds a volume's byte limit as CSI's capacity range
// does: Required is what the caller needs (0: nothing), Limit the most it
// accepts (0: no bound). The limit given is Required, else Limit; both
// zero means no byte limit.
type CapacityRange struct {
	Required int64
	Limit    int64
}

// Exactly is the range that admits only n.
func Exactly(n int64) CapacityRange { return CapacityRange{Required: n, Limit: n} }

func (r CapacityRange) validate() error {
	if r.Required < 0 || r.Limit < 0 {
		return errorf(KindInvalid, "capacity must not be negative")
	}
	if r.Limit > 0 && r.Required > r.Limit {
		return errorf(KindInvalid, "required capacity %d is more than the limit %d", r.Required, r.Limit)
	}
	return nil
}

func (r CapacityRange) pick() int64 {
	if r.Required > 0 {
		return r.Required
	}
	return r.Limit
}

// Admits reports whether a volume with byte limit c (0: none) satisfies r.
func (r CapacityRange) Admits(c int64) bool {
	if c == 0 {
		return r.Required == 0 && r.Limit == 0
	}
	return (r.Required == 0 || c >= r.Required) && (r.Limit == 0 || c <= r.Limit)
}

// name is what the creator calls the volume ("" in old metadata: its id).
func (v *Volume) name() string {
	if v.Name != "" {
		return v.Name
	}
	return v.ID
}

// differences names what a repeated create asks for that the existing
// volume does not have ("" if it is the same request).
func differences(v *Volume, req CreateRequest) string {
	var d []string
	if !req.Capacity.Admits(v.Limits.Bytes) {
		d = append(d, fmt.Sprintf("capacity %d not in the range asked for [%d, %d]", v.Limits.Bytes, req.Capacity.Required, req.Capacity.Limit))
	}
	if v.Limits.Inodes != req.InodeLimit {
		d = append(d, fmt.Sprintf("inode limit %d, not %d", v.Limits.Inodes, req.InodeLimit))
	}
	if !reflect.DeepEqual(v.Options, req.Options) {
		d = append(d, fmt.Sprintf("export options %+v, not %+v", v.Options, req.Options))
	}
	if v.RootAttrs != req.Root {
		d = append(d, fmt.Sprintf("root %d:%d mode %04o, not %d:%d mode %04o", v.RootAttrs.UID, v.RootAttrs.GID, v.RootAttrs.Mode, req.Root.UID, req.Root.GID, req.Root.Mode))
	}
	if !reflect.DeepEqual(v.Source, req.Source) {
		d = append(d, fmt.Sprintf("content source %v, not %v", sourceString(v.Source), sourceString(req.Source)))
	}
	if v.reclaim() != req.Reclaim {
		d = append(d, fmt.Sprintf("reclaim mode %s, not %s", v.reclaim(), req.Reclaim))
	}
	if v.name() != req.Name {
		d = append(d, fmt.Sprintf("made for %q, not %q", v.name(), req.Name))
	}
	return strings.Join(d, "; ")
}

func sourceString(s *Source) string {
	switch {
	case s == nil:
		return "none"
	case s.Snapshot != "":
		return "snapshot " + s.Snapshot
	}
	return "volume " + s.Volume
}

func (v *Volume) reclaim() ReclaimMode {
	if v.Reclaim == "" {
		return ReclaimDelete
	}
	return v.Reclaim
}

// normalize checks a create request and fills its defaults.
func (req *CreateRequest) normalize() error {
	if err := ValidateID(req.ID); err != nil {
		return errorf(KindInvalid, "%v", err)
	}
	if err := req.Options.Validate(); err != nil {
		return errorf(KindInvalid, "%v", err)
	}
	if err := req.Capacity.validate(); err != nil {
		return err
	}
	if req.InodeLimit < 0 {
		return errorf(KindInvalid, "inode limit must not be negative")
	}
	if req.Root.Mode&^0o7777 != 0 {
		return errorf(KindInvalid, "root mode %o has bits beyond 07777", req.Root.Mode)
	}
	if req.Root.Mode == 0 {
		req.Root.Mode = 0o777
	}
	if req.Source != nil && *req.Source == (Source{}) {
		req.Source = nil
	}
	if req.Source != nil && (req.Source.Snapshot == "") == (req.Source.Volume == "") {
		return errorf(KindInvalid, "a content source names exactly one of a snapshot or a volume")
	}
	switch req.Reclaim {
	case "":
		req.Reclaim = ReclaimDelete
	case ReclaimDelete, ReclaimRetain, ReclaimArchive:
	default:
		return errorf(KindInvalid, "reclaim mode must be delete, retain or archive, not %q", req.Reclaim)
	}
	if req.Name == "" {
		req.Name = req.ID
	}
	return nil
}

// CreateVolume creates a volume, or returns the existing one if a volume
// of that id was created with the same parameters (existed is then
// true). A volume of that id with other parameters is KindExists.
//
// A volume with a content source is copied by a background job that
// outlives the call: the call waits for it until ctx ends (then
// KindAborted), and a repeat of the request while it runs waits for the
// same job, so a caller with a short deadline converges by retrying
// rather than starting the copy over.
func (t *Table) CreateVolume(ctx context.Context, req CreateRequest) (v *Volume, existed bool, err error) {
	if err := req.normalize(); err != nil {
		return nil, false, err
	}
	t.opMu.Lock()
	if old, ok := t.Volume(req.ID); ok {
		t.opMu.Unlock()
		return repeatOf(old, req)
	}
	if j := t.jobs.creating[req.ID]; j != nil {
		t.opMu.Unlock()
		return t.awaitClone(ctx, j, req, true)
	}
	capacity := req.Capacity.pick()
	lim := quota.Limits{Bytes: capacity, Inodes: req.InodeLimit}
	if req.Source == nil {
		defer t.opMu.Unlock()
		v, err := t.createEmpty(req, lim)
		return v, false, err
	}
	j, err := t.startClone(req, lim)
	t.opMu.Unlock()
	if err != nil {
		return nil, false, err
	}
	return t.awaitClone(ctx, j, req, false)
}

func repeatOf(v *Volume, req CreateRequest) (*Volume, bool, error) {
	if d := differences(v, req); d != "" {
		return nil, false, errorf(KindExists, "volume %s exists with other parameters: %s", req.ID, d)
	}
	return v, true, nil
}

// createEmpty makes a volume with no content source. t.opMu is held.
func (t *Table) createEmpty(req CreateRequest, lim quota.Limits) (*Volume, error) {
	in := intent{Op: "create", ID: req.ID}
	if err := t.beginIntent(in); err != nil {
		return nil, err
	}
	crashPoint("create:intent")
	staging, fail, err := t.startStaging(in)
	if err != nil {
		return fail(err)
	}
	if err := os.Chown(staging, int(req.Root.UID), int(req.Root.GID)); err != nil {
		return fail(err)
	}
	if err := os.Chmod(staging, fs.FileMode(req.Root.Mode&0o777)|modeBits(req.Root.Mode)); err != nil {
		return fail(err)
	}
	crashPoint("create:populated")
	return t.commitCreate(in, req, lim, quota.Usage{})
}

// startStaging makes the empty staging tree of a recorded creation, and
// the function that undoes the creation on failure.
func (t *Table) startStaging(in intent) (string, func(error) (*Volume, error), error) {
	fail := func(err error) (*Volume, error) {
		t.rollbackCreate(in)
		return nil, err
	}
	staging := t.stagingDir("volume", in.ID)
	os.RemoveAll(staging)
	if err := os.Mkdir(staging, 0o700); err != nil {
		return "", fail, err
	}
	crashPoint("create:mkdir")
	return staging, fail, nil
}

// commitCreate writes a built volume's usage and metadata, renames its
// staging tree into place (the commit point) and serves it.
func (t *Table) commitCreate(in intent, req CreateRequest, lim quota.Limits, usage quota.Usage) (*Volume, error) {
	fail := func(err error) (*Volume, error) {
		t.rollbackCreate(in)
		return nil, err
	}
	v := &Volume{ID: req.ID, Name: req.Name, Created: time.Now().UTC(), Options: req.Options, Limits: lim,
		RootAttrs: req.Root, Source: req.Source, Reclaim: req.Reclaim}
	v.FSID = t.newFSID()
	data, _ := json.Marshal(persistedUsage{Bytes: usage.Bytes, Inodes: usage.Inodes})
	if err := writeFileAtomic(t.usagePath(req.ID), data, 0o600); err != nil {
		return fail(err)
	}
	if err := t.saveMeta(v); err != nil {
		return fail(err)
	}
	crashPoint("create:meta")
	if err := os.Rename(t.stagingDir("volume", req.ID), filepath.Join(t.volumesDir(), req.ID)); err != nil {
		return fail(err)
	}
	if err := syncDir(t.volumesDir()); err != nil {
		return fail(err)
	}
	crashPoint("create:renamed")
	if err := t.attach(v); err != nil {
		return nil, err
	}
	if err := t.commitIntent(in); err != nil {
		return nil, err
	}
	t.log.Info("volume created", "volume", v.ID, "name", v.Name, "capacity", lim.Bytes, "inodeLimit", lim.Inodes,
		"source", sourceString(req.Source), "usedBytes", usage.Bytes, "squash", v.Options.Squash, "readOnly", v.Options.ReadOnly, "reclaim", v.Reclaim)
	return v, nil
}

// startClone checks a content source and starts the job copying it into
// a new volume. t.opMu is held.
func (t *Table) startClone(req CreateRequest, lim quota.Limits) (*job, error) {
	var src, key string
	var srcUsage quota.Usage
	if s := req.Source; s.Snapshot != "" {
		snap, err := t.snapshot(s.Snapshot)
		if err != nil {
			return nil, err
		}
		if snap.Pending {
			return nil, errorf(KindPrecondition, "snapshot %s is not ready yet (its copy is still running); retry when it is ready", snap.ID)
		}
		src, srcUsage, key = t.SnapshotDir(snap.ID), snap.Usage, "snapshot/"+snap.ID
	} else {
		sv, ok := t.Volume(s.Volume)
		if !ok {
			return nil, errorf(KindNotFound, "source volume %s not found", s.Volume)
		}
		src, srcUsage, key = sv.Dir(), sv.Quota.Usage(), "volume/"+sv.ID
	}
	if lim.Bytes > 0 && srcUsage.Bytes > lim.Bytes {
		return nil, errorf(KindOutOfRange, "the source holds %d bytes, more than the requested capacity %d", srcUsage.Bytes, lim.Bytes)
	}
	if lim.Inodes > 0 && srcUsage.Inodes > lim.Inodes {
		return nil, errorf(KindOutOfRange, "the source holds %d inodes, more than the requested inode limit %d", srcUsage.Inodes, lim.Inodes)
	}
	in := intent{Op: "create", ID: req.ID}
	if err := t.beginIntent(in); err != nil {
		return nil, err
	}
	crashPoint("create:intent")
	ctx, cancel := context.WithCancel(t.jobs.ctx)
	j := &job{cancel: cancel, done: make(chan struct{}), req: req, expect: max(srcUsage.Bytes, lim.Bytes)}
	t.jobs.creating[req.ID] = j
	t.jobs.reading[key]++
	t.jobs.wg.Add(1)
	go func() {
		defer t.jobs.wg.Done()
		_, err := t.runClone(ctx, j, in, src, lim)
		if err != nil {
			t.log.Error("volume copy failed", "volume", req.ID, "source", sourceString(req.Source), "err", err)
		}
		t.opMu.Lock()
		delete(t.jobs.creating, req.ID)
		t.jobs.reading[key]--
		if t.jobs.reading[key] == 0 {
			delete(t.jobs.reading, key)
		}
		t.opMu.Unlock()
		j.err = err
		cancel()
		close(j.done)
	}()
	return j, nil
}

// runClone copies src into the new volume's staging tree and commits it.
func (t *Table) runClone(ctx context.Context, j *job, in intent, src string, lim quota.Limits) (*Volume, error) {
	staging, fail, err := t.startStaging(in)
	if err != nil {
		return fail(err)
	}
	usage, err := copyTree(copyJob{ctx: ctx, progress: &j.written, hook: t.copyHook}, src, staging)
	if err != nil {
		return fail(fmt.Errorf("copying %s: %w", sourceString(j.req.Source), err))
	}
	if err := syncFS(staging); err != nil {
		return fail(err)
	}
	crashPoint("create:populated")
	return t.commitCreate(in, j.req, lim, usage)
}

// awaitClone waits for a clone job, then answers req as a create (or a
// repeat) of what the job made.
func (t *Table) awaitClone(ctx context.Context, j *job, req CreateRequest, repeat bool) (*Volume, bool, error) {
	select {
	case <-j.done:
	case <-ctx.Done():
		return nil, false, errorf(KindAborted, "volume %s is still being copied from %s; repeat the request to wait for it", req.ID, sourceString(j.req.Source))
	}
	if j.err != nil {
		return nil, false, j.err
	}
	v, ok := t.Volume(req.ID)
	if !ok {
		return nil, false, errorf(KindAborted, "volume %s went away right after it was made; repeat the request", req.ID)
	}
	if repeat {
		return repeatOf(v, req)
	}
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

// DeleteVolume unexports a volume and reclaims it per mode ("": the mode
// stored with the volume). Clients still holding its handles get
// NFS3ERR_STALE: its fsid is no longer known. A volume that a copy reads
// is KindPrecondition until the copy ends; one being made is KindAborted.
func (t *Table) DeleteVolume(id string, mode ReclaimMode) (DeleteResult, error) {
	switch mode {
	case "", ReclaimDelete, ReclaimRetain, ReclaimArchive:
	default:
		return DeleteResult{}, errorf(KindInvalid, "reclaim mode must be delete, retain or archive, not %q", mode)
	}
	if err := ValidateID(id); err != nil {
		return DeleteResult{}, errorf(KindInvalid, "%v", err)
	}
	t.opMu.Lock()
	defer t.opMu.Unlock()
	if t.jobs.creating[id] != nil {
		return DeleteResult{}, errorf(KindAborted, "volume %s is still being created (copied from its source); retry when that ends", id)
	}
	v, ok := t.Volume(id)
	if !ok {
		return DeleteResult{}, errorf(KindNotFound, "volume %s not found", id)
	}
	if n := t.jobs.reading["volume/"+id]; n > 0 {
		return DeleteResult{}, errorf(KindPrecondition, "volume %s is the source of %d copies in progress (snapshots or clones); retry when they are done", id, n)
	}
	if mode == "" {
		mode = v.reclaim()
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

// VolumeUpdate lists the settings UpdateVolume changes; nil fields are
// left as they are.
type VolumeUpdate struct {
	Squash     *Squash
	AnonUID    *uint32
	AnonGID    *uint32
	ReadOnly   *bool
	Clients    *[]netip.Prefix // empty: any client
	InodeLimit *int64          // 0: none
	Reclaim    *ReclaimMode
}

// UpdateVolume changes a volume's export options, inode limit or reclaim
// mode. Calls that start after it returns see the new options (calls in
// flight finish under the old ones, as with exportfs -r); an inode limit
// below what the volume holds is refused.
func (t *Table) UpdateVolume(id string, u VolumeUpdate) (*Volume, error) {
	t.opMu.Lock()
	defer t.opMu.Unlock()
	v, ok := t.Volume(id)
	if !ok {
		return nil, errorf(KindNotFound, "volume %s not found", id)
	}
	nv := *v
	o := &nv.Options
	if u.Squash != nil {
		o.Squash = *u.Squash
	}
	if u.AnonUID != nil {
		o.AnonUID = *u.AnonUID
	}
	if u.AnonGID != nil {
		o.AnonGID = *u.AnonGID
	}
	if u.ReadOnly != nil {
		o.ReadOnly = *u.ReadOnly
	}
	if u.Clients != nil {
		o.Clients = append([]netip.Prefix(nil), (*u.Clients)...)
	}
	if err := o.Validate(); err != nil {
		return nil, errorf(KindInvalid, "%v", err)
	}
	if u.InodeLimit != nil {
		if *u.InodeLimit < 0 {
			return nil, errorf(KindInvalid, "inode limit must not be negative")
		}
		if used := v.Quota.Usage().Inodes; *u.InodeLimit > 0 && *u.InodeLimit < used {
			return nil, errorf(KindPrecondition, "volume %s holds %d inodes, more than the new inode limit %d", id, used, *u.InodeLimit)
		}
		nv.Limits.Inodes = *u.InodeLimit
	}
	if u.Reclaim != nil {
		switch *u.Reclaim {
		case ReclaimDelete, ReclaimRetain, ReclaimArchive:
		default:
			return nil, errorf(KindInvalid, "reclaim mode must be delete, retain or archive, not %q", *u.Reclaim)
		}
		nv.Reclaim = *u.Reclaim
	}
	if reflect.DeepEqual(nv.Options, v.Options) && nv.Limits == v.Limits && nv.reclaim() == v.reclaim() {
		return v, nil
	}
	if err := t.saveMeta(&nv); err != nil {
		return nil, err
	}
	v.Quota.SetLimits(nv.Limits)
	t.replace(v, &nv)
	t.log.Info("volume settings changed", "volume", id, "squash", nv.Options.Squash, "anonUID", nv.Options.AnonUID,
		"anonGID", nv.Options.AnonGID, "readOnly", nv.Options.ReadOnly, "clients", len(nv.Options.Clients),
		"inodeLimit", nv.Limits.Inodes, "reclaim", nv.reclaim())
	return &nv, nil
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
	nv.root = &Node{Vol: nv, Handle: r.Handle, fd: r.fd, ktype: r.ktype, kh: r.kh, pinned: true, ioFD: -1}
	t.mu.Lock()
	t.byID[nv.ID] = nv
	t.byFSID[nv.FSID] = nv
	t.mu.Unlock()
	t.nodes.dropVolume(old)
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

// recoverIntents finishes or undoes the operations a crash interrupted.
// It runs in Open before volumes are loaded, so nothing half-made is ever
// exported. It returns the snapshots whose copies must start over once
// the volumes are loaded.
func (t *Table) recoverIntents() (resume []string, err error) {
	for _, d := range []string{t.intentsDir(), t.snapMetaDir(), t.snapshotsDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	ents, err := os.ReadDir(t.intentsDir())
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(t.intentsDir(), e.Name()))
		if err != nil {
			return nil, err
		}
		var in intent
		if err := json.Unmarshal(data, &in); err != nil || ValidateID(in.ID) != nil {
			return nil, fmt.Errorf("intent record %s is unreadable (%v): inspect and remove it", e.Name(), err)
		}
		again := false
		switch in.Op {
		case "create":
			err = t.rollbackCreate(in)
		case "delete":
			err = t.finishDelete(in)
		case "snapshot":
			again, err = t.recoverSnapshot(in)
		case "snapdelete":
			err = t.finishSnapDelete(in)
		default:
			err = fmt.Errorf("unknown operation %q", in.Op)
		}
		if err != nil {
			return nil, fmt.Errorf("recovering %s: %w", e.Name(), err)
		}
		if again {
			resume = append(resume, in.ID)
			t.log.Warn("a snapshot copy was interrupted; it starts over", "snapshot", in.ID)
			continue
		}
		t.log.Warn("recovered an operation interrupted by a crash", "op", in.Op, "id", in.ID, "target", in.Target)
	}
	return resume, nil
}
