// Package benchreport turns nfsbench's JSON-lines results into the tables
// of docs/benchmarks.md and a PNG chart.
package benchreport

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/rwxnfs/rwxnfs/pkg/loadgen"
)

// Servers in the order tables and the chart show them; "limit" is the
// physical limit measured by nfsbench limits.
var Servers = []string{"rwxnfs", "ganesha", "go-nfs", "limit"}

// Order of workloads in tables and the chart.
var Order = []string{"null", "seqwrite", "seqread", "randread", "randwrite", "create", "stat", "remove", "meta", "readdir", "lock", "lock-null"}

// Header and Row format the human table nfsbench prints as it goes.
func Header() string {
	return fmt.Sprintf("%-8s %-10s %10s %12s %10s %10s %10s  %s", "server", "workload", "ops", "ops/s", "MiB/s", "p50 µs", "p99 µs", "note")
}

// Row is one line of the human table.
func Row(r loadgen.Result) string {
	switch {
	case r.Error != "":
		return fmt.Sprintf("%-8s %-10s FAILED: %s", r.Server, r.Workload, r.Error)
	case r.NA != "":
		return fmt.Sprintf("%-8s %-10s n/a: %s", r.Server, r.Workload, r.NA)
	}
	return fmt.Sprintf("%-8s %-10s %10d %12.0f %10.1f %10.0f %10.0f  %s", r.Server, r.Workload, r.Ops, r.OpsPerS, r.MiBPerS, r.P50us, r.P99us, r.Note)
}

// Set is results by server and workload; a later line replaces an earlier.
type Set map[string]map[string]loadgen.Result

// Load reads a JSON-lines file.
func Load(path string) (Set, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s := Set{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] != '{' {
			continue
		}
		var r loadgen.Result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if s[r.Server] == nil {
			s[r.Server] = map[string]loadgen.Result{}
		}
		s[r.Server][r.Workload] = r
	}
	return s, sc.Err()
}

// get returns a result with figures, if there is one.
func (s Set) get(server, w string) (loadgen.Result, bool) {
	r, ok := s[server][w]
	return r, ok && r.Error == "" && r.NA == "" && r.Ops > 0
}

// bytesWorkload says which workloads are compared by MiB/s.
func bytesWorkload(w string) bool { return w == "seqwrite" || w == "seqread" }

// value is the figure workloads are compared by.
func value(r loadgen.Result) float64 {
	if bytesWorkload(r.Workload) {
		return r.MiBPerS
	}
	return r.OpsPerS
}

func unit(w string) string {
	switch {
	case bytesWorkload(w):
		return "MiB/s"
	case w == "readdir":
		return "entries/s"
	case w == "create" || w == "stat" || w == "remove" || w == "meta":
		return "files/s"
	case w == "lock":
		return "pairs/s"
	}
	return "ops/s"
}
