package exports

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rwxnfs/rwxnfs/pkg/quota"
)

func TestCreateVolumeIdempotent(t *testing.T) {
	tb := openTable(t, t.TempDir())
	req := CreateRequest{ID: "pvc-1", Capacity: Exactly(1 << 30), InodeLimit: 1000, Options: DefaultOptions(), Root: RootAttrs{UID: 1000, GID: 2000, Mode: 0o2770}}
	v, existed, err := tb.CreateVolume(context.Background(), req)
	if err != nil || existed {
		t.Fatalf("create: %v existed=%v", err, existed)
	}
	var st unix.Stat_t
	if err := unix.Lstat(v.Dir(), &st); err != nil || st.Uid != 1000 || st.Gid != 2000 || st.Mode&0o7777 != 0o2770 {
		t.Fatalf("root: %v uid %d gid %d mode %o", err, st.Uid, st.Gid, st.Mode&0o7777)
	}
	v2, existed, err := tb.CreateVolume(context.Background(), req)
	if err != nil || !existed || v2 != v {
		t.Fatalf("repeat: %v existed=%v same=%v", err, existed, v2 == v)
	}
	bigger := req
	bigger.Capacity = Exactly(2 << 30)
	if _, _, err := tb.CreateVolume(context.Background(), bigger); KindOf(err) != KindExists {
		t.Fatalf("incompatible size: %v, want KindExists", err)
	}
	other := req
	other.Options.ReadOnly = true
	if _, _, err := tb.CreateVolume(context.Background(), other); KindOf(err) != KindExists {
		t.Fatalf("incompatible options: %v, want KindExists", err)
	}
	for _, bad := range []CreateRequest{
		{ID: "../x"}, {ID: "ok", Capacity: CapacityRange{Required: -1}}, {ID: "ok", Options: Options{Squash: "maybe"}},
		{ID: "ok", Options: DefaultOptions(), Root: RootAttrs{Mode: 0o17777}},
		{ID: "ok", Options: DefaultOptions(), Source: &Source{Snapshot: "a", Volume: "b"}},
	} {
		if _, _, err := tb.CreateVolume(context.Background(), bad); KindOf(err) != KindInvalid {
			t.Errorf("%+v: %v, want KindInvalid", bad, err)
		}
	}
	if _, _, err := tb.CreateVolume(context.Background(), CreateRequest{ID: "x", Options: DefaultOptions(), Source: &Source{Snapshot: "nope"}}); KindOf(err) != KindNotFound {
		t.Fatalf("missing snapshot: %v", err)
	}
	// Survives a restart with its parameters.
	tb.Close()
	tb2 := openTable(t, filepath.Dir(filepath.Dir(v.Dir())))
	if _, existed, err := tb2.CreateVolume(context.Background(), req); err != nil || !existed {
		t.Fatalf("after restart: %v existed=%v", err, existed)
	}
	if l := tb2.MustVolume("pvc-1").Quota.Limits(); l.Bytes != 1<<30 || l.Inodes != 1000 {
		t.Fatalf("limits after restart %+v", l)
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
	if err != nil || v.Limits().Bytes != 10<<20 || v.reclaim() != ReclaimDelete || v.name() != "r" {
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
	if v, _, err := tb.CreateVolume(ctx, CreateRequest{ID: "lim", Capacity: CapacityRange{Limit: 7 << 20}, Options: DefaultOptions()}); err != nil || v.Limits().Bytes != 7<<20 {
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

// Table.Create (nfsd's default volume) is CreateVolume with nothing else
// set: the same crash-safe path (TestCrashRecovery's "default"), the
// same metadata and saved usage, so a CreateVolume asking for the same
// is a repeat of it. A volume of that id, or a directory of that name
// made by hand while nfsd serves, is ErrExists, and the directory is
// left alone.
func TestCreateIsCreateVolume(t *testing.T) {
	root := t.TempDir()
	tb := openTable(t, root)
	ctx := context.Background()
	v, err := tb.Create("default", DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	wantRoot(t, v, 0, 0, 0o777)
	if v.Limits() != (quota.Limits{}) || !reflect.DeepEqual(v.Options, DefaultOptions()) {
		t.Fatalf("limits %+v options %+v", v.Limits(), v.Options)
	}
	if _, err := os.Stat(filepath.Join(root, "state", "usage", "default.json")); err != nil {
		t.Fatalf("no saved usage: %v", err)
	}
	if again, existed, err := tb.CreateVolume(ctx, CreateRequest{ID: "default", Options: DefaultOptions()}); err != nil || !existed || again != v {
		t.Fatalf("CreateVolume of what Create made: existed=%v same=%v %v", existed, again == v, err)
	}
	ro := DefaultOptions()
	ro.ReadOnly = true
	for _, o := range []Options{DefaultOptions(), ro} {
		if _, err := tb.Create("default", o); !errors.Is(err, ErrExists) || KindOf(err) != KindExists {
			t.Fatalf("second Create with %+v: %v, want ErrExists", o, err)
		}
	}
	if _, err := tb.Create("../x", DefaultOptions()); KindOf(err) != KindInvalid {
		t.Fatalf("bad id: %v", err)
	}
	if _, err := tb.Create("x", Options{Squash: "maybe"}); KindOf(err) != KindInvalid {
		t.Fatalf("bad options: %v", err)
	}

	byHand := filepath.Join(root, "volumes", "byhand")
	if err := os.Mkdir(byHand, 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(byHand, "f"), []byte("mine"), 0o600)
	if _, err := tb.Create("byhand", DefaultOptions()); !errors.Is(err, ErrExists) {
		t.Fatalf("Create over a directory made by hand: %v, want ErrExists", err)
	}
	if _, _, err := tb.CreateVolume(ctx, CreateRequest{ID: "byhand", Options: DefaultOptions()}); KindOf(err) != KindExists {
		t.Fatalf("CreateVolume over a directory made by hand: %v, want KindExists", err)
	}
	if got, err := os.ReadFile(filepath.Join(byHand, "f")); err != nil || string(got) != "mine" {
		t.Fatalf("the directory made by hand was touched: %q %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(root, "state", "volumes", "byhand.json")); err == nil {
		t.Fatal("a refused create wrote metadata")
	}
	// The next start adopts it; the default volume keeps its fsid.
	tb.Close()
	tb2 := openTable(t, root)
	if tb2.MustVolume("default").FSID != v.FSID {
		t.Fatal("the default volume's fsid changed across a restart")
	}
	if _, ok := tb2.Volume("byhand"); !ok {
		t.Fatal("the directory made by hand was not adopted at the next start")
	}
}

// A directory found in volumes/ without metadata is adopted by Open
// through the one create path: served with default options and no
// limits, its root's owner and mode recorded as they are, its metadata
// and usage written, so its fsid and handles survive the next restart.
// Metadata without a directory is skipped.
func TestAdoption(t *testing.T) {
	root := t.TempDir()
	openTable(t, root).Close() // the layout
	dir := filepath.Join(root, "volumes", "found")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chown(dir, 1000, 2000)
	os.Chmod(dir, 0o2750|os.ModeSetgid)
	if err := os.WriteFile(filepath.Join(dir, "keep"), []byte("operator data"), 0o644); err != nil {
		t.Fatal(err)
	}
	ghost := `{"id": "ghost", "fsid": 7, "options": {"squash": "none", "anonUID": 65534, "anonGID": 65534}}`
	if err := os.WriteFile(filepath.Join(root, "state", "volumes", "ghost.json"), []byte(ghost), 0o600); err != nil {
		t.Fatal(err)
	}

	tb := openTable(t, root)
	v, ok := tb.Volume("found")
	if !ok {
		t.Fatal("not adopted")
	}
	wantRoot(t, v, 1000, 2000, 0o2750)
	want := CreateRequest{ID: "found", Options: DefaultOptions(), Root: RootAttrs{UID: 1000, GID: 2000, Mode: 0o2750}}
	if err := want.normalize(); err != nil {
		t.Fatal(err)
	}
	if d := differences(v, want); d != "" {
		t.Fatalf("adopted as %s", d)
	}
	if got, err := os.ReadFile(filepath.Join(v.Dir(), "keep")); err != nil || string(got) != "operator data" {
		t.Fatalf("adopted data %q %v", got, err)
	}
	for _, p := range []string{"state/volumes/found.json", "state/usage/found.json"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("adoption did not write %s: %v", p, err)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(root, "state", "intents")); len(ents) != 0 {
		t.Errorf("intent records left: %v", ents)
	}
	if _, ok := tb.Volume("ghost"); ok {
		t.Fatal("metadata without a directory was served")
	}
	if err := tb.Reconcile(v); err != nil {
		t.Fatal(err)
	}
	if u := v.Quota.Usage(); u != (quota.Usage{Bytes: int64(len("operator data")), Inodes: 1}) {
		t.Fatalf("usage after the walk %+v", u)
	}
	h := v.Root().Handle
	tb.Close()

	tb2 := openTable(t, root)
	v2 := tb2.MustVolume("found")
	if v2.FSID != v.FSID {
		t.Fatal("an adopted volume's fsid changed across a restart")
	}
	n, err := tb2.Resolve(h)
	if err != nil {
		t.Fatalf("a handle of an adopted volume after a restart: %v", err)
	}
	tb2.Release(n)
	if _, existed, err := tb2.CreateVolume(context.Background(), want); err != nil || !existed {
		t.Fatalf("a create asking for what was adopted: existed=%v %v", existed, err)
	}
}

// Metadata of a default volume written before Table.Create took
// CreateVolume's path (root mode 0, no name, no reclaim mode) is read as
// what CreateVolume with the same defaults makes, so a repeat of that
// request is recognised.
func TestLegacyDefaultVolume(t *testing.T) {
	root := t.TempDir()
	openTable(t, root).Close()
	dir := filepath.Join(root, "volumes", "default")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o777)
	old, _ := json.Marshal(volumeMeta{Volume: Volume{ID: "default", FSID: 42, Options: DefaultOptions()}})
	if err := os.WriteFile(filepath.Join(root, "state", "volumes", "default.json"), old, 0o600); err != nil {
		t.Fatal(err)
	}
	tb := openTable(t, root)
	v := tb.MustVolume("default")
	if v.FSID != 42 || v.RootAttrs.Mode != 0o777 || v.reclaim() != ReclaimDelete || v.name() != "default" {
		t.Fatalf("legacy volume read as %+v", v)
	}
	if _, existed, err := tb.CreateVolume(context.Background(), CreateRequest{ID: "default", Options: DefaultOptions()}); err != nil || !existed {
		t.Fatalf("repeat of the default request: existed=%v %v", existed, err)
	}
}
