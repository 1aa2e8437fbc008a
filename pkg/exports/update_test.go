package exports

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
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
	if !reflect.DeepEqual(nv.Options, want) || nv.Limits.Inodes != 50 || nv.Reclaim != ReclaimRetain {
		t.Fatalf("updated to %+v limits %+v reclaim %s", nv.Options, nv.Limits, nv.Reclaim)
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

// CreateVolume takes a capacity range: the limit is required if given,
// else the range's limit; a repeat is the same volume when its limit is
// in the repeat's range and everything else is equal.
func TestCreateVolumeCapacityRange(t *testing.T) {
	tb := openTable(t, t.TempDir())
	ctx := context.Background()
	req := CreateRequest{ID: "r", Capacity: CapacityRange{Required: 10 << 20, Limit: 20 << 20}, Options: DefaultOptions()}
	v, _, err := tb.CreateVolume(ctx, req)
	if err != nil || v.Limits.Bytes != 10<<20 || v.reclaim() != ReclaimDelete || v.name() != "r" {
		t.Fatalf("%+v %v", v, err)
	}
	for _, r := range []CapacityRange{{}, {Required: 5 << 20}, {Limit: 10 << 20}, {Required: 10 << 20, Limit: 10 << 20}} {
		rep := req
		rep.Capacity = r
		if _, existed, err := tb.CreateVolume(ctx, rep); err != nil || !existed {
			t.Errorf("repeat with %+v: existed=%v %v", r, existed, err)
		}
	}
	for _, r := range []CapacityRange{{Required: 11 << 20}, {Limit: 9 << 20}} {
		rep := req
		rep.Capacity = r
		if _, _, err := tb.CreateVolume(ctx, rep); KindOf(err) != KindExists || !strings.Contains(err.Error(), "capacity") {
			t.Errorf("repeat with %+v: %v, want KindExists naming the capacity", r, err)
		}
	}
	other := req
	other.Name = "pvc-other"
	if _, _, err := tb.CreateVolume(ctx, other); KindOf(err) != KindExists || !strings.Contains(err.Error(), "pvc-other") {
		t.Errorf("same id for another name: %v", err)
	}
	ret := req
	ret.Reclaim = ReclaimArchive
	if _, _, err := tb.CreateVolume(ctx, ret); KindOf(err) != KindExists || !strings.Contains(err.Error(), "reclaim") {
		t.Errorf("same id, other reclaim mode: %v", err)
	}
	if v, _, err := tb.CreateVolume(ctx, CreateRequest{ID: "lim", Capacity: CapacityRange{Limit: 7 << 20}, Options: DefaultOptions()}); err != nil || v.Limits.Bytes != 7<<20 {
		t.Fatalf("limit only: %+v %v", v, err)
	}
	for _, r := range []CapacityRange{{Required: 2, Limit: 1}, {Required: -1}, {Limit: -1}} {
		if _, _, err := tb.CreateVolume(ctx, CreateRequest{ID: "bad", Capacity: r, Options: DefaultOptions()}); KindOf(err) != KindInvalid {
			t.Errorf("range %+v: %v, want KindInvalid", r, err)
		}
	}
	if _, _, err := tb.CreateVolume(ctx, CreateRequest{ID: "bad", Reclaim: "shred", Options: DefaultOptions()}); KindOf(err) != KindInvalid {
		t.Errorf("bad reclaim mode: %v", err)
	}
	// The stored reclaim mode applies; an explicit one overrides it.
	if _, _, err := tb.CreateVolume(ctx, CreateRequest{ID: "keep", Reclaim: ReclaimArchive, Options: DefaultOptions()}); err != nil {
		t.Fatal(err)
	}
	if res, err := tb.DeleteVolume("keep", ReclaimDelete); err != nil || res.Path != "" {
		t.Fatalf("explicit delete of an archive-mode volume: %+v %v", res, err)
	}
}

// Capacity reports the backing file system and what limits promised.
func TestCapacity(t *testing.T) {
	tb := openTable(t, t.TempDir())
	ctx := context.Background()
	for id, c := range map[string]int64{"a": 100 << 20, "b": 50 << 20, "c": 0} {
		if _, _, err := tb.CreateVolume(ctx, CreateRequest{ID: id, Capacity: Exactly(c), Options: DefaultOptions()}); err != nil {
			t.Fatal(err)
		}
	}
	a := tb.MustVolume("a")
	a.Quota.Add(30<<20, 1) // as if a client had written 30 MiB
	c, err := tb.Capacity()
	if err != nil {
		t.Fatal(err)
	}
	var fs unix.Statfs_t
	unix.Statfs(filepath.Dir(a.Dir()), &fs)
	if c.Total != int64(fs.Blocks)*fs.Bsize || c.Free <= 0 || c.Free > c.Total {
		t.Fatalf("file system figures %+v (statfs %+v)", c, fs)
	}
	if c.Promised != 120<<20 || c.Limited != 2 || c.Unlimited != 1 || c.Copying != 0 {
		t.Fatalf("promised %d (want %d), limited %d, unlimited %d, copying %d", c.Promised, 120<<20, c.Limited, c.Unlimited, c.Copying)
	}
	if want := max(0, c.Free-c.Promised); c.Available != want {
		t.Fatalf("available %d, want %d", c.Available, want)
	}
}
