package exports

import "path/filepath"

// Where everything lives under ROOT (docs/design.md, "State on disk"):
//
//	volumes/<id>/               served volumes
//	volumes/.staging-<id>/      a volume being made (ids cannot start with ".")
//	volumes/.trash-<id>-<t>/    a deleted volume being removed
//	snapshots/<id>/             snapshot trees, never served
//	snapshots/.staging-<id>/    a snapshot being copied
//	snapshots/.trash-<id>-<t>/  a deleted snapshot being removed
//	retained/<id>[.json]        volumes deleted with ReclaimRetain, and their metadata
//	archive/<id>-<t>[.json]     volumes deleted with ReclaimArchive, and their metadata
//	state/handle.key            the handle MAC key
//	state/volumes/<id>.json     volume metadata (volumeMeta)
//	state/usage/<id>.json       saved usage, written only by pkg/quota (quota.Store)
//	state/snapshots/<id>.json   snapshot metadata (Snapshot)
//	state/intents/<kind>-<id>.json  operations in progress (intent)

func (t *Table) volumesDir() string   { return filepath.Join(t.root, "volumes") }
func (t *Table) snapshotsDir() string { return filepath.Join(t.root, "snapshots") }
func (t *Table) metaDir() string      { return filepath.Join(t.state, "volumes") }
func (t *Table) usageDir() string     { return filepath.Join(t.state, "usage") }
func (t *Table) snapMetaDir() string  { return filepath.Join(t.state, "snapshots") }
func (t *Table) intentsDir() string   { return filepath.Join(t.state, "intents") }
func (t *Table) retainedDir() string  { return filepath.Join(t.root, "retained") }
func (t *Table) archiveDir() string   { return filepath.Join(t.root, "archive") }

// stagingDir is where a volume or snapshot (kind) is built before the
// rename that puts it in place: beside its final place, so the rename is
// atomic, under a name no id can have, so it is never served.
func (t *Table) stagingDir(kind, id string) string {
	if kind == "snapshot" {
		return filepath.Join(t.snapshotsDir(), ".staging-"+id)
	}
	return filepath.Join(t.volumesDir(), ".staging-"+id)
}

// SnapshotDir is where a snapshot's tree is.
func (t *Table) SnapshotDir(id string) string { return filepath.Join(t.snapshotsDir(), id) }
