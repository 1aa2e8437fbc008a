package exports

import (
	"errors"
	"net/netip"
	"reflect"

	"github.com/rwxnfs/rwxnfs/pkg/quota"
)

// ExpandVolume sets a volume's byte limit. Mounted clients see it at
// once (the next WRITE and FSSTAT use it). A limit below what the volume
// holds is refused.
func (t *Table) ExpandVolume(id string, capacity int64) (*Volume, error) {
	if capacity < 0 {
		return nil, errorf(KindInvalid, "capacity must be 0 (no limit) or positive")
	}
	t.opMu.Lock()
	defer t.opMu.Unlock()
	v, ok := t.Volume(id)
	if !ok {
		return nil, errorf(KindNotFound, "volume %s not found", id)
	}
	lim := v.Limits()
	if lim.Bytes == capacity {
		return v, nil
	}
	old := lim
	lim.Bytes = capacity
	if err := setLimits(v.Quota, old, lim, func() error { return t.saveMeta(v, lim) }); err != nil {
		return nil, limitsError(id, err)
	}
	t.log.Info("volume capacity changed", "volume", id, "from", old.Bytes, "to", capacity)
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

	AllowSetID   *bool
	AllowDevices *bool
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
	nv, lim := *v, v.Limits()
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
	if u.AllowSetID != nil {
		o.AllowSetID = *u.AllowSetID
	}
	if u.AllowDevices != nil {
		o.AllowDevices = *u.AllowDevices
	}
	if err := o.Validate(); err != nil {
		return nil, errorf(KindInvalid, "%v", err)
	}
	if u.InodeLimit != nil {
		if *u.InodeLimit < 0 {
			return nil, errorf(KindInvalid, "inode limit must not be negative")
		}
		lim.Inodes = *u.InodeLimit
	}
	if u.Reclaim != nil {
		if err := u.Reclaim.check(); err != nil {
			return nil, err
		}
		nv.Reclaim = *u.Reclaim
	}
	if reflect.DeepEqual(nv.Options, v.Options) && lim == v.Limits() && nv.reclaim() == v.reclaim() {
		return v, nil
	}
	if err := setLimits(v.Quota, v.Limits(), lim, func() error { return t.saveMeta(&nv, lim) }); err != nil {
		return nil, limitsError(id, err)
	}
	t.replace(v, &nv)
	t.log.Info("volume settings changed", "volume", id, "squash", nv.Options.Squash, "anonUID", nv.Options.AnonUID,
		"anonGID", nv.Options.AnonGID, "readOnly", nv.Options.ReadOnly, "allowSetID", nv.Options.AllowSetID, "allowDevices", nv.Options.AllowDevices, "clients", len(nv.Options.Clients),
		"inodeLimit", lim.Inodes, "reclaim", nv.reclaim())
	return &nv, nil
}

// setLimits changes a served volume's limits from old to lim and
// persists them with save. A raise is saved first and then set, so a
// failed save admits nothing more than the metadata says. A lowering is
// set first, checked against usage in the same step as every reservation
// (quota.Volume.Lower), so writers in flight cannot take the volume past
// it; then saved, and a failed save restores old (raising is always
// safe).
func setLimits(q *quota.Volume, old, lim quota.Limits, save func() error) error {
	if !quota.Lowers(lim, old) {
		if err := save(); err != nil {
			return err
		}
		q.SetLimits(lim)
		return nil
	}
	if err := q.Lower(lim); err != nil {
		return err
	}
	if err := save(); err != nil {
		q.SetLimits(old)
		return err
	}
	return nil
}

// limitsError names the volume in a refusal of setLimits.
func limitsError(id string, err error) error {
	var below *quota.BelowUsageError
	if errors.As(err, &below) {
		return errorf(KindPrecondition, "volume %s: %v", id, below)
	}
	return err
}
