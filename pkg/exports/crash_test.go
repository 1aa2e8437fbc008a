package exports

import (
	"context"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Crash injection. Every multi-step operation marks its steps
// (Table.step). For each operation below, TestCrashRecovery first runs it
// once in this process, recording the steps it reaches; then, for each of
// those steps, it re-executes this test binary (TestCrashHelper), which
// runs the operation on a table whose step hook SIGKILLs the process at
// that step. The table opened afterwards must be consistent: no intent
// left, no staging or trash directory, and the operation either complete
// or absent, as the operation's check says. A step named in the code that
// no operation reaches fails the test, so a new step cannot go untested.

// crashOp is one operation TestCrashRecovery interrupts. Each starts from
// a table holding the volume "base" filled by makeRichTree.
type crashOp struct {
	// setup prepares the root further, on the table that made "base".
	setup func(t *testing.T, tb *Table, root string)
	// run is the operation, on a table opened after setup (steps may
	// also be reached in Open itself).
	run func(tb *Table) error
	// check looks at the table opened after a crash at step.
	check func(t *testing.T, tb *Table, root, step string)
}

var crashOps = map[string]crashOp{
	"clone": {
		run: func(tb *Table) error {
			_, _, err := tb.CreateVolume(context.Background(), CreateRequest{ID: "new", Options: DefaultOptions(), Source: &Source{Volume: "base"}})
			return err
		},
		check: func(t *testing.T, tb *Table, root, step string) {
			if nv, ok := createdOrAbsent(t, tb, root, step); ok {
				sameTree(t, tb.MustVolume("base").Dir(), nv.Dir())
			}
		},
	},
	"create": {
		run: func(tb *Table) error {
			_, _, err := tb.CreateVolume(context.Background(), CreateRequest{ID: "new", Capacity: Exactly(1 << 20), InodeLimit: 10,
				Options: DefaultOptions(), Root: RootAttrs{UID: 1000, GID: 2000, Mode: 0o2770}})
			return err
		},
		check: func(t *testing.T, tb *Table, root, step string) {
			if nv, ok := createdOrAbsent(t, tb, root, step); ok {
				wantRoot(t, nv, 1000, 2000, 0o2770)
				if l := nv.Quota.Limits(); l.Bytes != 1<<20 || l.Inodes != 10 {
					t.Errorf("limits %+v after recovery", l)
				}
			}
		},
	},
	"default": {
		run: func(tb *Table) error { _, err := tb.Create("new", DefaultOptions()); return err },
		check: func(t *testing.T, tb *Table, root, step string) {
			if nv, ok := createdOrAbsent(t, tb, root, step); ok {
				wantRoot(t, nv, 0, 0, 0o777)
			}
		},
	},
	"adopt": {
		// A directory made by hand, without metadata, is adopted by the
		// next Open: the steps are reached inside Open.
		setup: func(t *testing.T, tb *Table, root string) {
			dir := filepath.Join(root, "volumes", "found")
			if err := os.Mkdir(dir, 0o750); err != nil {
				t.Fatal(err)
			}
			os.Chmod(dir, 0o750) // whatever the umask
			if err := os.WriteFile(filepath.Join(dir, "keep"), []byte("operator data"), 0o644); err != nil {
				t.Fatal(err)
			}
		},
		run: func(tb *Table) error { return nil },
		check: func(t *testing.T, tb *Table, root, step string) {
			// Never lost, whatever the step: served, its data intact,
			// its metadata written.
			v, ok := tb.Volume("found")
			if !ok {
				t.Fatal("an adopted directory is not served")
			}
			if got, err := os.ReadFile(filepath.Join(v.Dir(), "keep")); err != nil || string(got) != "operator data" {
				t.Errorf("adopted data %q %v", got, err)
			}
			wantRoot(t, v, 0, 0, 0o750)
			if _, err := os.Stat(filepath.Join(root, "state", "volumes", "found.json")); err != nil {
				t.Errorf("adopted volume's metadata: %v", err)
			}
		},
	},
	"delete": {
		run: func(tb *Table) error { _, err := tb.DeleteVolume("base", ReclaimDelete); return err },
		check: func(t *testing.T, tb *Table, root, step string) {
			deleted(t, tb, root)
		},
	},
	"retain": {
		run: func(tb *Table) error { _, err := tb.DeleteVolume("base", ReclaimRetain); return err },
		check: func(t *testing.T, tb *Table, root, step string) {
			deleted(t, tb, root)
			sameTreeAt(t, root, filepath.Join(root, "retained", "base"))
		},
	},
	"archive": {
		run: func(tb *Table) error { _, err := tb.DeleteVolume("base", ReclaimArchive); return err },
		check: func(t *testing.T, tb *Table, root, step string) {
			deleted(t, tb, root)
			dirs, _ := filepath.Glob(filepath.Join(root, "archive", "base-*"))
			dirs = slices.DeleteFunc(dirs, func(p string) bool { return strings.HasSuffix(p, ".json") })
			if len(dirs) != 1 {
				t.Fatalf("archived trees %v, want one", dirs)
			}
			sameTreeAt(t, root, dirs[0])
		},
	},
	"snapshot": {
		run: func(tb *Table) error { return snapshotAndWait(tb, "s", "base") },
		check: func(t *testing.T, tb *Table, root, step string) {
			// A snapshot recorded before the crash is copied again.
			s, err := waitSnapshot(tb, "s")
			if err != nil {
				t.Fatalf("snapshot after the crash: %v", err)
			}
			sameTree(t, tb.MustVolume("base").Dir(), tb.SnapshotDir(s.ID))
		},
	},
	"snapdelete": {
		setup: func(t *testing.T, tb *Table, root string) {
			if err := snapshotAndWait(tb, "s", "base"); err != nil {
				t.Fatal(err)
			}
		},
		run: func(tb *Table) error { return tb.DeleteSnapshot("s") },
		check: func(t *testing.T, tb *Table, root, step string) {
			if _, err := tb.Snapshot("s"); err == nil {
				t.Error("a recorded snapshot deletion was not finished")
			}
		},
	},
}

// createdOrAbsent checks that the volume "new" is either served or left
// no trace (metadata, usage), and that a crash past the commit point did
// not lose it. It returns the volume if it is served.
func createdOrAbsent(t *testing.T, tb *Table, root, step string) (*Volume, bool) {
	t.Helper()
	nv, ok := tb.Volume("new")
	if !ok {
		for _, p := range []string{"state/volumes/new.json", "state/usage/new.json", "volumes/new"} {
			if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
				t.Errorf("a rolled-back creation left %s", p)
			}
		}
	}
	if step == "create:renamed" && !ok {
		t.Error("a creation past its commit point was lost")
	}
	return nv, ok
}

func wantRoot(t *testing.T, v *Volume, uid, gid, mode uint32) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(v.Dir(), &st); err != nil || st.Uid != uid || st.Gid != gid || st.Mode&0o7777 != mode {
		t.Errorf("volume %s root: %v uid %d gid %d mode %04o, want %d %d %04o", v.ID, err, st.Uid, st.Gid, st.Mode&0o7777, uid, gid, mode)
	}
}

// deleted checks that a recorded deletion of "base" was finished.
func deleted(t *testing.T, tb *Table, root string) {
	t.Helper()
	if _, ok := tb.Volume("base"); ok {
		t.Error("a recorded deletion was not finished")
	}
	for _, p := range []string{"state/volumes/base.json", "state/usage/base.json", "volumes/base"} {
		if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
			t.Errorf("a deleted volume left %s", p)
		}
	}
}

// sameTreeAt checks a retained or archived tree against a fresh copy of
// the rich tree.
func sameTreeAt(t *testing.T, root, dir string) {
	t.Helper()
	ref := filepath.Join(root, "ref")
	os.RemoveAll(ref)
	if err := os.Mkdir(ref, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(ref, 0o777) // as a volume root, whatever the umask
	makeRichTree(t, ref)
	sameTree(t, ref, dir)
}

// crashRoot makes a root holding "base" and whatever op's setup adds.
func crashRoot(t *testing.T, op crashOp) string {
	t.Helper()
	root := t.TempDir()
	tb := openTable(t, root)
	v, _, err := tb.CreateVolume(context.Background(), CreateRequest{ID: "base", Options: DefaultOptions()})
	if err != nil {
		t.Fatal(err)
	}
	makeRichTree(t, v.Dir())
	if op.setup != nil {
		op.setup(t, tb, root)
	}
	tb.Close()
	return root
}

// stepsOf runs op without crashing and returns the steps it reaches, in
// order, each once.
func stepsOf(t *testing.T, op crashOp) []string {
	t.Helper()
	root := crashRoot(t, op)
	var mu sync.Mutex
	var steps []string
	tb, err := Open(Config{Root: root, Log: quietLog(), stepHook: func(s string) {
		mu.Lock()
		defer mu.Unlock()
		if !slices.Contains(steps, s) {
			steps = append(steps, s)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	if err := op.run(tb); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	return slices.Clone(steps)
}

// stepsInCode lists the steps the package's code marks.
func stepsInCode(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`\.step\("([^"]+)"\)`)
	var out []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(src), -1) {
			if !slices.Contains(out, m[1]) {
				out = append(out, m[1])
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("found no steps in the code")
	}
	return out
}

func TestCrashRecovery(t *testing.T) {
	if os.Getenv("RWXNFS_CRASH_HELPER") != "" {
		return
	}
	reached := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(crashOps)) {
		op := crashOps[name]
		steps := stepsOf(t, op)
		if len(steps) == 0 {
			t.Errorf("%s reaches no step: nothing to crash at", name)
		}
		for _, step := range steps {
			reached[step] = true
			t.Run(name+"@"+step, func(t *testing.T) { crashAt(t, name, op, step) })
		}
	}
	for _, s := range stepsInCode(t) {
		if !reached[s] {
			t.Errorf("step %s is in the code but no operation here reaches it", s)
		}
	}
}

// crashAt runs op in a helper process that dies at step, then checks
// the table recovered from it.
func crashAt(t *testing.T, name string, op crashOp, step string) {
	root := crashRoot(t, op)
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$")
	cmd.Env = append(os.Environ(), "RWXNFS_CRASH_HELPER="+name, "RWXNFS_CRASH_ROOT="+root, "RWXNFS_CRASH_STEP="+step)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("helper did not die at %s: %v\n%s", step, err, out)
	}
	tb := openTable(t, root)
	op.check(t, tb, root, step) // first: a snapshot's copy runs again
	leftovers := func(dir string) {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".") {
				t.Errorf("left behind: %s/%s", dir, e.Name())
			}
		}
	}
	leftovers(filepath.Join(root, "volumes"))
	leftovers(filepath.Join(root, "snapshots"))
	if ents, _ := os.ReadDir(filepath.Join(root, "state", "intents")); len(ents) != 0 {
		t.Errorf("intent records left: %v", ents)
	}
	// The table still works.
	if _, _, err := tb.CreateVolume(context.Background(), CreateRequest{ID: "after", Options: DefaultOptions()}); err != nil {
		t.Fatal(err)
	}
}

// TestCrashHelper is the re-executed side of TestCrashRecovery.
func TestCrashHelper(t *testing.T) {
	name := os.Getenv("RWXNFS_CRASH_HELPER")
	if name == "" {
		t.Skip("only runs re-executed by TestCrashRecovery")
	}
	at := os.Getenv("RWXNFS_CRASH_STEP")
	tb, err := Open(Config{Root: os.Getenv("RWXNFS_CRASH_ROOT"), Log: quietLog(), stepHook: func(s string) {
		if s == at {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			time.Sleep(time.Hour)
		}
	}})
	if err == nil {
		err = crashOps[name].run(tb)
	}
	t.Fatalf("helper survived %s: %v", name, err)
}
