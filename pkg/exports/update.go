package exports

import (
	"net/netip"
	"reflect"
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
	if used := v.Quota.Usage().Bytes; capacity > 0 && capacity < used {
		return nil, errorf(KindPrecondition, "volume %s holds %d bytes, more than the new capacity %d", id, used, capacity)
	}
	lim := v.Limits()
	if lim.Bytes == capacity {
		return v, nil
	}
	old := lim.Bytes
	lim.Bytes = capacity
	if err := t.saveMeta(v, lim); err != nil {
		return nil, err
	}
	v.Quota.SetLimits(lim)
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
	if err := t.saveMeta(&nv, lim); err != nil {
		return nil, err
	}
	v.Quota.SetLimits(lim)
	t.replace(v, &nv)
	t.log.Info("volume settings changed", "volume", id, "squash", nv.Options.Squash, "anonUID", nv.Options.AnonUID,
		"anonGID", nv.Options.AnonGID, "readOnly", nv.Options.ReadOnly, "clients", len(nv.Options.Clients),
		"inodeLimit", lim.Inodes, "reclaim", nv.reclaim())
	return &nv, nil
}
