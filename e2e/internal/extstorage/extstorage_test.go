package extstorage

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/rwxnfs/rwxnfs/e2e/toolchain"
)

// parseFile parses a JUnit report in testdata.
func parseFile(t *testing.T, name string) *Report {
	t.Helper()
	return parsePath(t, filepath.Join("testdata", name))
}

func parsePath(t *testing.T, path string) *Report {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := ParseJUnit(f)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A real report (trimmed): the driver's specs that ran failed, others were
// skipped by the suite or by -ginkgo.skip, another driver's spec is not
// ours, and the suite's own nodes passed.
func TestParseJUnitSpecs(t *testing.T) {
	r := parseFile(t, "no-storageclass.xml")
	got := map[string]string{}
	for _, s := range r.Specs {
		got[s.Pattern+" | "+s.Suite] += s.Status + " "
	}
	want := map[string]string{
		"Dynamic PV (default fs) | volumes":                "failed ",
		"Dynamic PV (default fs) | subPath":                "failed skipped ",
		"Dynamic PV (xfs) | volumes":                       "skipped ",
		"Pre-provisioned PV (default fs) | subPath":        "skipped ",
		"Dynamic PV (filesystem volmode) | multiVolume":    "failed ",
		"Dynamic PV (default fs) | fsgroupchangepolicy":    "failed ",
		"Dynamic Snapshot (delete policy) | snapshottable": "skipped ",
		"Dynamic PV (default fs) | volume-modify":          "skipped ",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("specs by pattern and suite:\n got %v\nwant %v", got, want)
	}
	if len(r.Setup) != 4 {
		t.Errorf("setup nodes: %d, want 4: %+v", len(r.Setup), r.Setup)
	}
	fails := r.Failures()
	if len(fails) != 4 {
		t.Fatalf("failures: %d, want 4", len(fails))
	}
	for _, f := range fails {
		if !strings.HasPrefix(f.Message, "[FAILED] ") || !strings.Contains(f.Message, "\nIn [It] at: ") {
			t.Errorf("%s: message %q lacks the failure", f.Name, f.Message)
		}
	}
	for _, s := range r.Specs {
		if s.Pattern == "Dynamic PV (xfs)" && !strings.Contains(s.Message, "doesn't support xfs") {
			t.Errorf("skip reason %q", s.Message)
		}
	}
	counts := r.BySuite()
	total := counts[len(counts)-1]
	if total != (Count{Suite: "all", Ran: 4, Passed: 0, Failed: 4, Skipped: 5, Seconds: total.Seconds}) {
		t.Errorf("total %+v", total)
	}
	for i := 1; i < len(counts)-1; i++ {
		if counts[i-1].Suite >= counts[i].Suite {
			t.Errorf("suites not sorted: %v", counts)
		}
	}
	if tab := r.Table(); !strings.Contains(tab, "subPath") || !strings.HasPrefix(strings.Split(tab, "\n")[len(counts)], "all") {
		t.Errorf("table:\n%s", tab)
	}
}

// When the suite's setup fails no spec runs: the report has no specs, and
// the failure is the setup node's.
func TestParseJUnitSetupFailed(t *testing.T) {
	r := parseFile(t, "beforesuite-failed.xml")
	if len(r.Specs) != 0 {
		t.Errorf("specs: %v", r.Specs)
	}
	f := r.Failures()
	if len(f) != 1 || f[0].Name != "[SynchronizedBeforeSuite]" || !strings.Contains(f[0].Message, "context deadline exceeded") {
		t.Errorf("failures: %+v", f)
	}
}

func TestParseJUnitBadInput(t *testing.T) {
	for name, in := range map[string]string{
		"empty":       "",
		"not xml":     "Ran 3 of 7047 Specs",
		"no suite":    `<testsuites></testsuites>`,
		"no status":   `<testsuites><testsuite><testcase name="[It] x"></testcase></testsuite></testsuites>`,
		"truncated":   `<testsuites><testsuite><testcase name="[It] x" status="passed">`,
		"no pattern":  `<testsuites><testsuite><testcase name="[It] External Storage [Driver: nfs.rwxnfs.io] volumes" status="passed"/></testsuite></testsuites>`,
		"bad numbers": `<testsuites><testsuite time="x"></testsuite></testsuites>`,
	} {
		if r, err := ParseJUnit(strings.NewReader(in)); err == nil {
			t.Errorf("%s: no error, report %+v", name, r)
		}
	}
}

func TestSpecNameSuite(t *testing.T) {
	for name, want := range map[string][2]string{
		"[It] External Storage [Driver: nfs.rwxnfs.io] [Testpattern: Dynamic PV (default fs)] fsgroupchangepolicy (Always)[LinuxOnly], pod created": {"Dynamic PV (default fs)", "fsgroupchangepolicy"},
		"[It] External Storage [Driver: nfs.rwxnfs.io] [Testpattern: Dynamic PV (ntfs)] [Feature:Windows] subPath should x":                         {"Dynamic PV (ntfs)", "subPath"},
		"[It] External Storage [Driver: nfs.rwxnfs.io] [Testpattern: Dynamic PV (default fs)(allowExpansion)] volume-expand should x":               {"Dynamic PV (default fs)(allowExpansion)", "volume-expand"},
		"[It] External Storage [Driver: nfs.rwxnfs.io] [Testpattern:  (delete policy)] volumegroupsnapshottable [Feature:volumegroupsnapshot] x":    {"(delete policy)", "volumegroupsnapshottable"},
		"[It] External Storage [Driver: nfs.rwxnfs.io] [Testpattern: Dynamic PV (xfs)] [Slow] volumes should store data":                            {"Dynamic PV (xfs)", "volumes"},
	} {
		in := `<testsuites><testsuite><testcase status="passed" name="` + name + `"/></testsuite></testsuites>`
		r, err := ParseJUnit(strings.NewReader(in))
		if err != nil {
			t.Fatal(err)
		}
		if got := [2]string{r.Specs[0].Pattern, r.Specs[0].Suite}; got != want {
			t.Errorf("%s: got %q, want %q", name, got, want)
		}
	}
}

// driverDefinition mirrors the keys of k8s.io/kubernetes v1.33.13
// test/e2e/storage/external's driverDefinition that the manifest uses:
// the suite ignores unknown keys silently, so a typo would turn a
// capability off without a word. Strict decoding catches it here.
type driverDefinition struct {
	StorageClass  struct{ FromExistingClassName string }
	SnapshotClass struct{ FromExistingClassName string }
	DriverInfo    struct {
		Name                 string
		MaxFileSize          int64
		SupportedFsType      map[string]struct{}
		SupportedMountOption map[string]struct{}
		Capabilities         map[string]bool
	}
}

// The capability names test/e2e/storage/framework/testdriver.go defines.
var knownCapabilities = strings.Fields(`persistence block fsGroup volumeMountGroup exec
	snapshotDataSource groupSnapshot pvcDataSource multipods RWX controllerExpansion
	nodeExpansion offlineExpansion onlineExpansion volumeLimits singleNodeVolume topology
	capacity FSResizeFromSourceNotSupported readWriteOncePod multiplePVsSameID capReadOnlyMany`)

func TestTestDriverManifest(t *testing.T) {
	var d driverDefinition
	if err := yaml.UnmarshalStrict(TestDriver, &d); err != nil {
		t.Fatalf("testdriver.yaml: %v", err)
	}
	if d.DriverInfo.Name != DriverName {
		t.Errorf("driver %q", d.DriverInfo.Name)
	}
	for c := range d.DriverInfo.Capabilities {
		found := false
		for _, k := range knownCapabilities {
			found = found || k == c
		}
		if !found {
			t.Errorf("capability %q is not one the suite knows", c)
		}
	}
	// What the driver lacks must stay off (docs/csi.md): no block volumes,
	// no topology, no node expansion step.
	for _, c := range []string{"block", "topology", "nodeExpansion", "volumeMountGroup"} {
		if d.DriverInfo.Capabilities[c] {
			t.Errorf("capability %s declared", c)
		}
	}
	// The classes are the chart's own: same names as its defaults.
	var values struct {
		StorageClasses      []struct{ Name string } `json:"storageClasses"`
		VolumeSnapshotClass struct{ Name string }   `json:"volumeSnapshotClass"`
	}
	b, err := os.ReadFile("../../../charts/rwxnfs/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &values); err != nil {
		t.Fatal(err)
	}
	if len(values.StorageClasses) == 0 || values.StorageClasses[0].Name != d.StorageClass.FromExistingClassName {
		t.Errorf("StorageClass %q is not the chart's first class %+v", d.StorageClass.FromExistingClassName, values.StorageClasses)
	}
	if values.VolumeSnapshotClass.Name != d.SnapshotClass.FromExistingClassName {
		t.Errorf("SnapshotClass %q is not the chart's %q", d.SnapshotClass.FromExistingClassName, values.VolumeSnapshotClass.Name)
	}
}

// The manifest as e2e.test itself reads it, and the run's flags: a dry
// run (no cluster) lists the driver's specs, and -ginkgo.skip leaves
// out exactly those Skip names. Needs e2e.test built (make
// cluster-tools builds it; make test does not), else it skips.
func TestDryRun(t *testing.T) {
	e2eTest, ok := toolchain.Default().Built("e2e.test")
	if !ok {
		t.Skipf("e2e.test not built (%s): go run ./e2e/cmd/toolchain e2e", e2eTest)
	}
	dir := t.TempDir()
	td := filepath.Join(dir, "testdriver.yaml")
	if err := os.WriteFile(td, TestDriver, 0o644); err != nil {
		t.Fatal(err)
	}
	o := Options{TestDriver: td, ReportDir: filepath.Join(dir, "report"), DryRun: true}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin, args := o.Command(e2eTest, "")
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", bin, args, err, tail(string(out)))
	}
	r := parsePath(t, filepath.Join(dir, "report", "junit_01.xml"))
	var listed, skipped int
	for _, s := range r.Specs {
		left := skipRE.MatchString(s.Name)
		switch {
		case s.Status == "skipped" && left:
			skipped++
		case s.Status == "passed" && !left: // a dry run "passes" what it would run
			listed++
		default:
			t.Errorf("%s: %s", s.Name, s.Status)
		}
	}
	t.Logf("dry run: %d specs listed, %d left out by -ginkgo.skip", listed, skipped)
	if listed < 100 || skipped == 0 {
		t.Errorf("dry run listed %d specs and skipped %d", listed, skipped)
	}
}

var skipRE = regexp.MustCompile(Skip)

func tail(s string) string {
	if len(s) > 3000 {
		return "…" + s[len(s)-3000:]
	}
	return s
}

// e2e.test's flag set prefixes ginkgo's flags with "ginkgo."; the ginkgo
// CLI takes them bare and passes what follows "--" to e2e.test.
func TestCommand(t *testing.T) {
	o := Options{Kubeconfig: "k", TestDriver: "td", ReportDir: "r", NonBlockingTaints: []string{"a", "b"}}
	bin, args := o.Command("/x/e2e.test", "/x/ginkgo")
	want := []string{`-ginkgo.focus=` + Focus, `-ginkgo.skip=` + Skip, "-ginkgo.timeout=4h0m0s", "-ginkgo.v", "-ginkgo.no-color",
		"-ginkgo.seed=1", "-storage.testdriver=td", "-report-dir=r", "-provider=skeleton", "-kubeconfig=k", "-non-blocking-taints=a,b"}
	if bin != "/x/e2e.test" || !reflect.DeepEqual(args, want) {
		t.Errorf("serial: %s %q", bin, args)
	}
	o.Procs, o.Focus = 3, "volumes"
	bin, args = o.Command("/x/e2e.test", "/x/ginkgo")
	want = []string{"--procs=3", "--focus=volumes", `--skip=` + Skip, "--timeout=4h0m0s", "--v", "--no-color", "--seed=1",
		"/x/e2e.test", "--", "-storage.testdriver=td", "-report-dir=r", "-provider=skeleton", "-kubeconfig=k", "-non-blocking-taints=a,b"}
	if bin != "/x/ginkgo" || !reflect.DeepEqual(args, want) {
		t.Errorf("parallel: %s %q", bin, args)
	}
}
