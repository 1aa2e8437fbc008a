package exports

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rwxnfs/rwxnfs/internal/atomicfile"
	"github.com/rwxnfs/rwxnfs/pkg/quota"
)

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
	if req.Reclaim == "" {
		req.Reclaim = ReclaimDelete
	}
	if err := req.Reclaim.check(); err != nil {
		return err
	}
	if req.Name == "" {
		req.Name = req.ID
	}
	return nil
}

// differences names what a repeated create asks for that the existing
// volume does not have ("" if it is the same request).
func differences(v *Volume, req CreateRequest) string {
	var d []string
	lim := v.Limits()
	if !req.Capacity.Admits(lim.Bytes) {
		d = append(d, fmt.Sprintf("capacity %d not in the range asked for [%d, %d]", lim.Bytes, req.Capacity.Required, req.Capacity.Limit))
	}
	if lim.Inodes != req.InodeLimit {
		d = append(d, fmt.Sprintf("inode limit %d, not %d", lim.Inodes, req.InodeLimit))
	}
	// Each differing field by the name a caller gives it: "squash root,
	// not all" says what to change, a dump of two structs does not.
	o, n := v.Options, req.Options
	diff := func(name string, old, new any) {
		if !reflect.DeepEqual(old, new) {
			d = append(d, fmt.Sprintf("%s %v, not %v", name, old, new))
		}
	}
	diff("squash", o.Squash, n.Squash)
	diff("anonUID", o.AnonUID, n.AnonUID)
	diff("anonGID", o.AnonGID, n.AnonGID)
	diff("readOnly", o.ReadOnly, n.ReadOnly)
	if len(o.Clients) > 0 || len(n.Clients) > 0 {
		diff("clients", o.Clients, n.Clients)
	}
	diff("uid", v.RootAttrs.UID, req.Root.UID)
	diff("gid", v.RootAttrs.GID, req.Root.GID)
	if v.RootAttrs.Mode != req.Root.Mode {
		d = append(d, fmt.Sprintf("mode %04o, not %04o", v.RootAttrs.Mode, req.Root.Mode))
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
	if _, err := os.Lstat(filepath.Join(t.volumesDir(), req.ID)); err == nil {
		t.opMu.Unlock()
		return nil, false, errorf(KindExists, "%s exists on the server but is not a served volume (made by hand since nfsd started?): remove it, or restart nfsd to adopt it", filepath.Join(t.volumesDir(), req.ID))
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

// Create makes an empty volume with export options opts, no limits and
// a root owned by root with mode 0777, like a fresh PVC: nfsd's default
// volume. It is CreateVolume with nothing else set, except that a volume
// of that id is ErrExists whatever its parameters.
func (t *Table) Create(id string, opts Options) (*Volume, error) {
	v, existed, err := t.CreateVolume(context.Background(), CreateRequest{ID: id, Options: opts})
	switch {
	case existed:
		return nil, fmt.Errorf("%w: %s", ErrExists, id)
	case KindOf(err) == KindExists:
		return nil, fmt.Errorf("%w: %v", ErrExists, err)
	}
	return v, err
}

func repeatOf(v *Volume, req CreateRequest) (*Volume, bool, error) {
	if d := differences(v, req); d != "" {
		return nil, false, errorf(KindExists, "volume %s exists with other parameters: %s", req.ID, d)
	}
	return v, true, nil
}

// One way to make a volume, whatever it starts with: nothing (an empty
// root with the requested owner and mode), a copy (clones and restores,
// in a background job) or a tree already in place (adoption). Each is an
// intent record (beginCreate), then build: the tree made in
// volumes/.staging-<id>, its usage and metadata written, and the rename
// into volumes/<id> that commits it. Recovery rolls back a creation that
// had not passed that rename (rollbackCreate).

// filler makes a new volume's tree in its staging directory and returns
// what the tree holds.
type filler func(staging string) (quota.Usage, error)

// beginCreate records the creation of a volume.
func (t *Table) beginCreate(id string) (intent, error) {
	in := intent{Op: "create", ID: id}
	if err := t.beginIntent(in); err != nil {
		return in, err
	}
	t.step("create:intent")
	return in, nil
}

// build takes the steps of a recorded creation and serves the volume;
// a failure undoes the creation. fill makes the tree; nil means that it
// is already in place in volumes/<id> (adoption), so there is nothing to
// make or rename.
func (t *Table) build(in intent, req CreateRequest, lim quota.Limits, fill filler) (*Volume, error) {
	fail := func(err error) (*Volume, error) {
		t.rollbackCreate(in)
		return nil, err
	}
	staging := t.stagingDir("volume", req.ID)
	var usage quota.Usage
	if fill != nil {
		os.RemoveAll(staging)
		if err := os.Mkdir(staging, 0o700); err != nil {
			return fail(err)
		}
		t.step("create:mkdir")
		var err error
		if usage, err = fill(staging); err != nil {
			return fail(err)
		}
		t.step("create:populated")
	}
	v := &Volume{ID: req.ID, Name: req.Name, Created: time.Now().UTC(), Options: req.Options,
		RootAttrs: req.Root, Source: req.Source, Reclaim: req.Reclaim, FSID: t.newFSID()}
	q, err := t.usage.Create(req.ID, lim, usage)
	if err != nil {
		return fail(err)
	}
	v.Quota = q
	if fill != nil {
		// A tree just made holds exactly what fill counted: nothing to
		// check against it (an adopted one gets the walk).
		q.MarkReconciled()
	}
	if err := t.saveMeta(v, lim); err != nil {
		return fail(err)
	}
	t.step("create:meta")
	if fill != nil {
		if err := os.Rename(staging, filepath.Join(t.volumesDir(), req.ID)); err != nil {
			return fail(err)
		}
		if err := atomicfile.SyncDir(t.volumesDir()); err != nil {
			return fail(err)
		}
		t.step("create:renamed")
	}
	if err := t.attach(v); err != nil {
		return nil, err
	}
	if err := t.commitIntent(in); err != nil {
		return nil, err
	}
	t.log.Info("volume created", "volume", v.ID, "name", v.Name, "capacity", lim.Bytes, "inodeLimit", lim.Inodes,
		"source", sourceString(req.Source), "adopted", fill == nil, "usedBytes", usage.Bytes, "squash", v.Options.Squash,
		"readOnly", v.Options.ReadOnly, "reclaim", v.Reclaim)
	return v, nil
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
	if err := t.removeMeta(in.ID); err != nil {
		return err
	}
	return t.commitIntent(in)
}

// createEmpty makes a volume with no content source. t.opMu is held.
func (t *Table) createEmpty(req CreateRequest, lim quota.Limits) (*Volume, error) {
	in, err := t.beginCreate(req.ID)
	if err != nil {
		return nil, err
	}
	return t.build(in, req, lim, func(staging string) (quota.Usage, error) {
		if err := os.Chown(staging, int(req.Root.UID), int(req.Root.GID)); err != nil {
			return quota.Usage{}, err
		}
		return quota.Usage{}, unix.Chmod(staging, req.Root.Mode)
	})
}

// adopt serves a directory found in volumes/ without metadata: one an
// operator made, or one an older nfsd left with its tree made before its
// metadata. It gets default options, no limits, and the owner and mode
// its root has; the reconcile walk counts what it holds. Open calls it
// while loading, before anything else runs.
func (t *Table) adopt(id string) (*Volume, error) {
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(t.volumesDir(), id), &st); err != nil {
		return nil, err
	}
	req := CreateRequest{ID: id, Options: DefaultOptions(), Root: RootAttrs{UID: st.Uid, GID: st.Gid, Mode: st.Mode & 0o7777}}
	if err := req.normalize(); err != nil {
		return nil, err
	}
	in, err := t.beginCreate(id)
	if err != nil {
		return nil, err
	}
	return t.build(in, req, quota.Limits{}, nil)
}

// newFSID picks a new volume's fsid: random, so that a volume deleted
// and made again under the same id does not accept its predecessor's
// handles, and never 0 or one in use.
func (t *Table) newFSID() uint64 {
	for {
		var b [8]byte
		rand.Read(b[:])
		id := binary.BigEndian.Uint64(b[:])
		if id != 0 && t.VolumeByFSID(id) == nil {
			return id
		}
	}
}
