package exports

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rwxnfs/rwxnfs/internal/atomicfile"
	"github.com/rwxnfs/rwxnfs/pkg/quota"
)

// Reclaimed is the tree of a deleted volume that was kept: retained
// (ROOT/retained/<id>) or archived (ROOT/archive/<id>-<time>).
type Reclaimed struct {
	// Name is "retained/<dir>" or "archive/<dir>", what RestoreVolume
	// takes.
	Name string
	// ID is the volume's id when it was deleted.
	ID      string
	Mode    ReclaimMode
	Path    string
	Deleted time.Time // when the tree was moved there
	// Limits are the volume's limits when it was deleted, if its
	// metadata was kept beside it (HasMeta).
	Limits  quota.Limits
	HasMeta bool
}

var reclaimDirs = map[string]ReclaimMode{"retained": ReclaimRetain, "archive": ReclaimArchive}

// archiveStamp is the length of "-20060102T150405.000000000Z", which
// DeleteVolume appends to archived (and to re-retained) trees.
const archiveStamp = len("-20060102T150405.000000000Z")

// Reclaimed lists the kept trees of deleted volumes, oldest first.
func (t *Table) Reclaimed() ([]Reclaimed, error) {
	var out []Reclaimed
	for _, kind := range []string{"retained", "archive"} {
		ents, err := os.ReadDir(filepath.Join(t.root, kind))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if !e.IsDir() {
				continue
			}
			r, err := t.reclaimed(kind + "/" + e.Name())
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// reclaimed describes the kept tree name ("retained/<dir>" …).
func (t *Table) reclaimed(name string) (Reclaimed, error) {
	kind, dir, ok := strings.Cut(name, "/")
	mode, known := reclaimDirs[kind]
	if !ok || !known || dir == "" || strings.Contains(dir, "/") || strings.HasPrefix(dir, ".") {
		return Reclaimed{}, errorf(KindInvalid, "%q: want retained/<dir> or archive/<dir>, as listed", name)
	}
	r := Reclaimed{Name: name, Mode: mode, Path: filepath.Join(t.root, kind, dir), ID: dir}
	var st unix.Stat_t
	if err := unix.Lstat(r.Path, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return Reclaimed{}, errorf(KindNotFound, "no kept volume tree %s", name)
	}
	// A rename changes the directory's ctime, not its mtime.
	r.Deleted = time.Unix(st.Ctim.Unix()).UTC()
	if len(dir) > archiveStamp && dir[len(dir)-archiveStamp] == '-' {
		if _, err := time.Parse("20060102T150405.000000000Z", dir[len(dir)-archiveStamp+1:]); err == nil {
			r.ID = dir[:len(dir)-archiveStamp]
		}
	}
	if m, err := readMeta(r.Path + ".json"); err == nil {
		r.ID, r.Limits, r.HasMeta = m.ID, m.Limits, true
	}
	return r, nil
}

func readMeta(path string) (volumeMeta, error) {
	var m volumeMeta
	data, err := os.ReadFile(path)
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// RestoreVolume serves a kept tree again as volume id ("": its id when
// it was deleted), with the options, limits and fsid it had if its
// metadata was kept (handles from before then work again), defaults and
// no limits otherwise. Its usage is counted by a walk of the tree before
// it returns (the volume is served meanwhile). A crash midway leaves the
// tree in volumes/ without metadata, which the next start adopts with
// defaults.
func (t *Table) RestoreVolume(name, id string) (*Volume, error) {
	v, err := t.restore(name, id)
	if err != nil {
		return nil, err
	}
	t.Reconcile(v)
	return v, nil
}

func (t *Table) restore(name, id string) (*Volume, error) {
	t.opMu.Lock()
	defer t.opMu.Unlock()
	r, err := t.reclaimed(name)
	if err != nil {
		return nil, err
	}
	if id == "" {
		id = r.ID
	}
	if err := ValidateID(id); err != nil {
		return nil, errorf(KindInvalid, "%v", err)
	}
	if _, ok := t.Volume(id); ok || t.jobs.creating[id] != nil {
		return nil, errorf(KindExists, "volume %s exists: restore %s under another id", id, name)
	}
	target := filepath.Join(t.volumesDir(), id)
	if _, err := os.Lstat(target); err == nil {
		return nil, errorf(KindExists, "%s exists on the server: restore %s under another id", target, name)
	}
	v := &Volume{ID: id, Created: time.Now().UTC(), Options: DefaultOptions(), Reclaim: r.Mode}
	var lim quota.Limits
	if m, err := readMeta(r.Path + ".json"); err == nil {
		kept := m.Volume
		v, lim = &kept, m.Limits
		if v.ID != id {
			v.ID, v.Name = id, ""
		}
	} else {
		var st unix.Stat_t
		if err := unix.Lstat(r.Path, &st); err != nil {
			return nil, err
		}
		v.RootAttrs = RootAttrs{UID: st.Uid, GID: st.Gid, Mode: st.Mode & 0o7777}
	}
	if v.FSID == 0 || t.VolumeByFSID(v.FSID) != nil {
		v.FSID = t.newFSID()
	}
	if err := os.Rename(r.Path, target); err != nil {
		return nil, err
	}
	undo := func(err error) (*Volume, error) {
		t.removeMeta(id)
		os.Rename(target, r.Path)
		return nil, err
	}
	if err := atomicfile.SyncDir(t.volumesDir()); err != nil {
		return undo(err)
	}
	q, err := t.usage.Create(id, lim, quota.Usage{})
	if err != nil {
		return undo(err)
	}
	v.Quota = q
	if err := t.saveMeta(v, lim); err != nil {
		return undo(err)
	}
	if err := t.attach(v); err != nil {
		return undo(err)
	}
	os.Remove(r.Path + ".json")
	t.log.Info("volume restored", "volume", id, "from", r.Path, "fsid", v.FSID, "capacity", lim.Bytes)
	return v, nil
}
