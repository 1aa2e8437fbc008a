package exports

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/rwxnfs/rwxnfs/pkg/quota"
)

// UpdateVolume changes export options for the next call through any
// handle, including handles whose nodes were cached before the change;
// the change persists, and handles stay valid.
func TestUpdateVolume(t *testing.T) {
	root := t.TempDir()
	tb := openTable(t, root)
	v, _, err := tb.CreateVolume(context.Background(), CreateRequest{ID: "u", Options: DefaultOptions()})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(v.Dir(), "f"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(v.Dir(), "g"), []byte("y"), 0o644)
	if err := tb.Reconcile(v); err != nil {
		t.Fatal(err)
	}
	h, err := tb.HandleAt(v, v.Root().FD(), "f")
	if err != nil {
		t.Fatal(err)
	}
	n, err := tb.Resolve(h) // now cached under the old record
	if err != nil {
		t.Fatal(err)
	}
	tb.Release(n)

	ro, squash := true, SquashAll
	clients := []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}
	var uid uint32 = 1234
	limit, reclaim := int64(50), ReclaimRetain
	nv, err := tb.UpdateVolume("u", VolumeUpdate{ReadOnly: &ro, Squash: &squash, AnonUID: &uid, Clients: &clients, InodeLimit: &limit, Reclaim: &reclaim})
	if err != nil {
		t.Fatal(err)
	}
	want := Options{Squash: SquashAll, AnonUID: 1234, AnonGID: Nobody, ReadOnly: true, Clients: clients}
	if !reflect.DeepEqual(nv.Options, want) || nv.Limits().Inodes != 50 || nv.Reclaim != ReclaimRetain {
		t.Fatalf("updated to %+v limits %+v reclaim %s", nv.Options, nv.Limits(), nv.Reclaim)
	}
	if got := tb.MustVolume("u"); got != nv {
		t.Fatal("the table serves the old record")
	}
	if nv.Quota.Limits().Inodes != 50 {
		t.Fatalf("accountant limits %+v", nv.Quota.Limits())
	}
	for _, handle := range [][]byte{h, v.Root().Handle} {
		n, err := tb.Resolve(handle)
		if err != nil {
			t.Fatalf("a handle from before the update: %v", err)
		}
		if !n.Vol.Options.ReadOnly || n.Vol.Options.AllowsClient(netip.MustParseAddr("10.2.0.1")) {
			t.Fatalf("a handle from before the update resolves with the old options %+v", n.Vol.Options)
		}
		tb.Release(n)
	}
	// Unchanged fields stay; a no-op returns the same record.
	if same, err := tb.UpdateVolume("u", VolumeUpdate{}); err != nil || same != nv {
		t.Fatalf("empty update: %v, same record %v", err, same == nv)
	}
	bad := Squash("some")
	if _, err := tb.UpdateVolume("u", VolumeUpdate{Squash: &bad}); KindOf(err) != KindInvalid {
		t.Fatalf("bad squash: %v", err)
	}
	shred := ReclaimMode("shred")
	if _, err := tb.UpdateVolume("u", VolumeUpdate{Reclaim: &shred}); KindOf(err) != KindInvalid {
		t.Fatalf("bad reclaim mode: %v", err)
	}
	one := int64(1)
	if _, err := tb.UpdateVolume("u", VolumeUpdate{InodeLimit: &one}); KindOf(err) != KindPrecondition {
		t.Fatalf("inode limit below usage (2 files): %v", err)
	}
	if _, err := tb.UpdateVolume("nope", VolumeUpdate{}); KindOf(err) != KindNotFound {
		t.Fatalf("unknown volume: %v", err)
	}
	// Deleting uses the reclaim mode stored with the volume.
	tb.Close()
	tb2 := openTable(t, root)
	if got := tb2.MustVolume("u"); !reflect.DeepEqual(got.Options, want) || got.Reclaim != ReclaimRetain {
		t.Fatalf("after restart: %+v reclaim %s", got.Options, got.Reclaim)
	}
	res, err := tb2.DeleteVolume("u", "")
	if err != nil || res.Path != filepath.Join(root, "retained", "u") {
		t.Fatalf("delete with the stored mode: %+v %v", res, err)
	}
}

// A volume's limits have one home while it is served, its accountant:
// a record replaced by UpdateVolume and the record that replaced it
// report the same limits after any later change, enforcement uses them,
// and the metadata file keeps them (in its "limits" field) across a
// restart.
func TestLimitsOneSource(t *testing.T) {
	root := t.TempDir()
	tb := openTable(t, root)
	ctx := context.Background()
	old, _, err := tb.CreateVolume(ctx, CreateRequest{ID: "l", Capacity: Exactly(10 << 20), InodeLimit: 100, Options: DefaultOptions()})
	if err != nil {
		t.Fatal(err)
	}
	fifty := int64(50)
	nv, err := tb.UpdateVolume("l", VolumeUpdate{InodeLimit: &fifty})
	if err != nil || nv == old {
		t.Fatalf("update: %v (new record: %v)", err, nv != old)
	}
	if _, err := tb.ExpandVolume("l", 20<<20); err != nil {
		t.Fatal(err)
	}
	want := quota.Limits{Bytes: 20 << 20, Inodes: 50}
	for _, r := range []*Volume{old, nv, tb.MustVolume("l")} {
		if r.Limits() != want {
			t.Fatalf("a record of the volume says %+v, want %+v", r.Limits(), want)
		}
	}
	if err := nv.Quota.Reserve(20<<20, 50); err != nil {
		t.Fatalf("reserving up to the limits: %v", err)
	}
	if err := nv.Quota.Reserve(1, 0); err == nil {
		t.Fatal("a byte past the expanded limit was admitted")
	}
	tb.Close()
	var m struct {
		Limits quota.Limits `json:"limits"`
	}
	data, _ := os.ReadFile(filepath.Join(root, "state", "volumes", "l.json"))
	if err := json.Unmarshal(data, &m); err != nil || m.Limits != want {
		t.Fatalf("metadata limits %+v %v in %s", m.Limits, err, data)
	}
	if got := openTable(t, root).MustVolume("l").Limits(); got != want {
		t.Fatalf("after restart %+v, want %+v", got, want)
	}
}
