// Package extstorage runs Kubernetes' own external-storage e2e suite
// (the External.Storage specs of e2e.test v1.33.13, built by e2e/toolchain)
// against the rwxnfs CSI driver, and reads its JUnit report.
//
// The suite learns what the driver can do only from a testdriver manifest
// (testdriver.yaml here): every capability declared there turns specs on,
// so a capability is declared only if the driver really has it, and a spec
// that fails is either a bug in rwxnfs or a capability to stop declaring
// (e2e/README.md, "Kubernetes' external storage suite").
//
// The cluster itself (control plane, VM nodes, the chart) is the caller's:
// e2e/kube's TestExternalStorage, or any cluster reached by a kubeconfig.
package extstorage

import (
	_ "embed"
	"encoding/xml"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"time"
)

// DriverName is the CSI driver the manifest describes.
const DriverName = "nfs.rwxnfs.io"

// TestDriver is the manifest (-storage.testdriver) describing the driver.
//
//go:embed testdriver.yaml
var TestDriver []byte

// Focus selects every spec the manifest defines for the driver.
const Focus = `External.Storage \[Driver: nfs\.rwxnfs\.io\]`

// Skip is what the run leaves out although the driver may support it: only
// specs this environment cannot run, each for a reason outside rwxnfs.
//   - [Disruptive]: they stop and start kubelet on a node (over SSH, with
//     systemctl) and force-delete pods while it is down; the test's VM
//     nodes have neither sshd nor systemd.
//   - "any volume data source": it deploys the hello-populator and
//     volume-data-source-validator images (registry.k8s.io/sig-storage),
//     which the offline nodes do not have; the driver sees only an
//     ordinary CreateVolume there (populators fill the volume afterwards).
//
// Specs the driver does not support are not skipped here: the suite skips
// them itself from the manifest, and the report says so.
const Skip = `\[Disruptive\]|should provision storage with any volume data source`

// Options are the settings of one e2e.test run.
type Options struct {
	Kubeconfig string // required (except for a dry run)
	TestDriver string // path of the manifest file; required
	ReportDir  string // where junit_01.xml goes; required
	// Kubectl is the kubectl the few specs that shell out use
	// (-kubectl-path); "" leaves e2e.test's default ("kubectl" on PATH).
	Kubectl string
	// Focus and Skip are ginkgo regular expressions ("" = the package's).
	Focus, Skip string
	// NonBlockingTaints are taint keys of nodes that may stay tainted
	// (the node that runs only nfsd): without them the suite waits for
	// those nodes to become schedulable and then fails.
	NonBlockingTaints []string
	// Timeout bounds the whole run (ginkgo's default is 1h; default 4h).
	Timeout time.Duration
	// Procs > 1 runs that many specs at once, through the ginkgo CLI
	// ([Serial] specs still run alone, at the end). Most of a spec's
	// time is waiting (pods starting on TCG nodes, polls), not CPU.
	Procs int
	// DryRun lists the specs without running them (no cluster needed).
	DryRun bool
}

// ginkgoFlags are ginkgo's own settings, without the "ginkgo." prefix
// e2e.test's flag set gives them.
func (o Options) ginkgoFlags() []string {
	focus, skip := o.Focus, o.Skip
	if focus == "" {
		focus = Focus
	}
	if skip == "" {
		skip = Skip
	}
	timeout := o.Timeout
	if timeout == 0 {
		timeout = 4 * time.Hour
	}
	f := []string{"focus=" + focus, "skip=" + skip, "timeout=" + timeout.String(),
		"v", "no-color",
		// The spec order is fixed so two runs compare.
		"seed=1"}
	if o.DryRun {
		f = append(f, "dry-run")
	}
	return f
}

// suiteFlags are e2e.test's own settings.
func (o Options) suiteFlags() []string {
	args := []string{
		"-storage.testdriver=" + o.TestDriver,
		"-report-dir=" + o.ReportDir,
		// No cloud: every provider-specific spec skips.
		"-provider=skeleton",
	}
	if o.Kubeconfig != "" {
		args = append(args, "-kubeconfig="+o.Kubeconfig)
	}
	if o.Kubectl != "" {
		args = append(args, "-kubectl-path="+o.Kubectl)
	}
	if len(o.NonBlockingTaints) > 0 {
		args = append(args, "-non-blocking-taints="+strings.Join(o.NonBlockingTaints, ","))
	}
	return args
}

// Command is the program to run and its arguments: e2e.test itself, one
// spec at a time, or with Procs > 1 the ginkgo CLI (its path in ginkgo)
// running e2e.test in that many processes.
func (o Options) Command(e2eTest, ginkgo string) (string, []string) {
	if o.Procs <= 1 {
		var args []string
		for _, f := range o.ginkgoFlags() {
			args = append(args, "-ginkgo."+f)
		}
		return e2eTest, append(args, o.suiteFlags()...)
	}
	args := []string{fmt.Sprintf("--procs=%d", o.Procs)}
	for _, f := range o.ginkgoFlags() {
		args = append(args, "--"+f)
	}
	args = append(append(args, e2eTest, "--"), o.suiteFlags()...)
	return ginkgo, args
}

// Spec is one test case of the report.
type Spec struct {
	Name    string  // the full spec text, "[It] External Storage [Driver: …] …"
	Pattern string  // "Dynamic PV (default fs)" ("" for suite setup nodes)
	Suite   string  // the storage test suite: "provisioning", "subPath"…
	Status  string  // ginkgo's: passed, skipped, failed, panicked, timedout, interrupted, aborted, pending
	Seconds float64 // wall time
	Message string  // why it was skipped, or how it failed
}

// Failed says whether the spec counts as a failure.
func (s Spec) Failed() bool {
	switch s.Status {
	case "passed", "skipped", "pending":
		return false
	}
	return true
}

// Report is what a run's JUnit file says about the driver's specs.
type Report struct {
	Specs []Spec // the driver's specs, in the report's order
	// Setup are the suite's own nodes ([SynchronizedBeforeSuite]…): when
	// one fails no spec runs at all, so a failed setup node is a failure.
	Setup   []Spec
	Seconds float64 // the suite's wall time
}

// testcase names look like
// "[It] External Storage [Driver: nfs.rwxnfs.io] [Testpattern: Dynamic PV (default fs)] [Slow] subPath should …":
// after the pattern come optional [tags], then the suite's name.
var specName = regexp.MustCompile(`\[Testpattern: ([^\]]*)\]((?:\s*\[[^\]]*\])*)\s*([^\s\[,]+)`)

type junitSuites struct {
	Suites []struct {
		Time  float64 `xml:"time,attr"`
		Cases []struct {
			Name    string  `xml:"name,attr"`
			Status  string  `xml:"status,attr"`
			Time    float64 `xml:"time,attr"`
			Skipped *struct {
				Message string `xml:"message,attr"`
			} `xml:"skipped"`
			Failure *struct {
				Message string `xml:"message,attr"`
				Text    string `xml:",chardata"`
			} `xml:"failure"`
			Error *struct {
				Message string `xml:"message,attr"`
				Text    string `xml:",chardata"`
			} `xml:"error"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

// ParseJUnit reads the junit_01.xml e2e.test writes into -report-dir (the
// format of ginkgo v2's JUnit reporter). Specs of other drivers and specs
// outside External Storage (left out by the focus) are dropped.
func ParseJUnit(r io.Reader) (*Report, error) {
	var js junitSuites
	if err := xml.NewDecoder(r).Decode(&js); err != nil {
		return nil, fmt.Errorf("junit report: %w", err)
	}
	if len(js.Suites) == 0 {
		return nil, fmt.Errorf("junit report: no <testsuite>")
	}
	rep := &Report{}
	driver := "External Storage [Driver: " + DriverName + "]"
	for _, s := range js.Suites {
		rep.Seconds += s.Time
		for _, c := range s.Cases {
			if c.Status == "" {
				return nil, fmt.Errorf("junit report: testcase %q has no status", c.Name)
			}
			sp := Spec{Name: c.Name, Status: c.Status, Seconds: c.Time}
			switch {
			case c.Failure != nil:
				sp.Message = firstNonEmpty(c.Failure.Message, c.Failure.Text)
			case c.Error != nil:
				sp.Message = firstNonEmpty(c.Error.Message, c.Error.Text)
			case c.Skipped != nil:
				sp.Message = c.Skipped.Message
			}
			sp.Message = strings.TrimSpace(sp.Message)
			switch {
			case strings.Contains(c.Name, driver):
				m := specName.FindStringSubmatch(c.Name)
				if m == nil {
					return nil, fmt.Errorf("junit report: no [Testpattern: …] suite in %q", c.Name)
				}
				sp.Pattern, sp.Suite = strings.TrimSpace(m[1]), m[3]
				rep.Specs = append(rep.Specs, sp)
			case !strings.HasPrefix(c.Name, "[It]"):
				rep.Setup = append(rep.Setup, sp)
			}
		}
	}
	return rep, nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if strings.TrimSpace(v) != "" {
			return v
		}
	}
	return ""
}

// Count is one suite's line of the summary. Ran = Passed + Failed.
type Count struct {
	Suite                        string
	Ran, Passed, Failed, Skipped int
	Seconds                      float64
}

// BySuite counts the specs per storage test suite, sorted by name, with
// the total ("all") last.
func (r *Report) BySuite() []Count {
	by := map[string]*Count{}
	total := &Count{Suite: "all"}
	for _, s := range r.Specs {
		c := by[s.Suite]
		if c == nil {
			c = &Count{Suite: s.Suite}
			by[s.Suite] = c
		}
		for _, c := range []*Count{c, total} {
			c.Seconds += s.Seconds
			switch {
			case s.Failed():
				c.Ran++
				c.Failed++
			case s.Status == "passed":
				c.Ran++
				c.Passed++
			default:
				c.Skipped++
			}
		}
	}
	out := make([]Count, 0, len(by)+1)
	for _, c := range by {
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Suite < out[j].Suite })
	return append(out, *total)
}

// Failures are the failed specs and setup nodes.
func (r *Report) Failures() []Spec {
	var out []Spec
	for _, s := range append(append([]Spec(nil), r.Setup...), r.Specs...) {
		if s.Failed() {
			out = append(out, s)
		}
	}
	return out
}

// Table is BySuite as aligned text (for a test log and e2e/README.md).
func (r *Report) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-28s %5s %6s %6s %7s %8s\n", "suite", "ran", "passed", "failed", "skipped", "time")
	for _, c := range r.BySuite() {
		fmt.Fprintf(&b, "%-28s %5d %6d %6d %7d %8s\n", c.Suite, c.Ran, c.Passed, c.Failed, c.Skipped,
			(time.Duration(c.Seconds) * time.Second).String())
	}
	return b.String()
}
