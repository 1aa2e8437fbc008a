package exports

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/rwxnfs/rwxnfs/pkg/quota"
)

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
