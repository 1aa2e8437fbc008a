// Package benchreport turns nfsbench's JSON-lines results into the tables
// of docs/benchmarks.md and a PNG chart.
//
// Every round of a workload is a line of its own. A figure in a table is
// the median of the rounds; a ratio between two servers is the median of
// the ratios within each round (both measured minutes apart at most), with
// the lowest and highest beside it to show the spread.
package benchreport

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/rwxnfs/rwxnfs/pkg/loadgen"
)

// Servers in the order tables and the chart show them; "limit" is the
// physical limit measured by nfsbench limits.
var Servers = []string{"rwxnfs", "ganesha", "go-nfs", "limit"}

// Order of the many-calls-in-flight workloads in tables and the chart.
var Order = []string{"null", "seqwrite", "seqread", "randread", "randwrite",
	"create", "stat", "getattr", "setattr", "rename", "remove", "mkdir", "rmdir", "meta",
	"readdir", "lock", "lock-null"}

// OneOrder is the one-call-in-flight workloads.
var OneOrder = append(append([]string{"null"}, loadgen.MetaPhases...), "readdir")

// Header and Row format the human table nfsbench prints as it goes.
func Header() string {
	return fmt.Sprintf("%-8s %-14s %2s %10s %12s %10s %10s %10s  %s", "server", "workload", "rd", "ops", "ops/s", "MiB/s", "p50 µs", "p99 µs", "note")
}

// Row is one line of the human table. One-call workloads show as
// "one:NAME", libnfs's as "libnfs:NAME".
func Row(r loadgen.Result) string {
	w := keyOf(r).String()
	switch {
	case r.Error != "":
		return fmt.Sprintf("%-8s %-14s FAILED: %s", r.Server, w, r.Error)
	case r.NA != "":
		return fmt.Sprintf("%-8s %-14s n/a: %s", r.Server, w, r.NA)
	}
	return fmt.Sprintf("%-8s %-14s %2d %10d %12.0f %10.1f %10.0f %10.0f  %s", r.Server, w, r.Round, r.Ops, r.OpsPerS, r.MiBPerS, r.P50us, r.P99us, r.Note)
}

// Key names a row of figures: a workload, in a mode, made by a client.
type Key struct {
	Workload string
	Mode     string // "" (many calls in flight) or loadgen.ModeOne
	Client   string // "" (nfsbench) or loadgen.ClientLibnfs
}

// Many, One and Libnfs make the keys of the three kinds of rows.
func Many(w string) Key { return Key{Workload: w} }
func One(w string) Key  { return Key{Workload: w, Mode: loadgen.ModeOne} }
func Libnfs(w string) Key {
	return Key{Workload: w, Mode: loadgen.ModeOne, Client: loadgen.ClientLibnfs}
}

func keyOf(r loadgen.Result) Key { return Key{r.Workload, r.Mode, r.Client} }

func (k Key) String() string {
	switch {
	case k.Client != "":
		return k.Client + ":" + k.Workload
	case k.Mode != "":
		return k.Mode + ":" + k.Workload
	}
	return k.Workload
}

// Set holds every round's result by server and key.
type Set map[string]map[Key][]loadgen.Result

// Add files one result.
func (s Set) Add(r loadgen.Result) {
	if s[r.Server] == nil {
		s[r.Server] = map[Key][]loadgen.Result{}
	}
	s[r.Server][keyOf(r)] = append(s[r.Server][keyOf(r)], r)
}

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
		s.Add(r)
	}
	return s, sc.Err()
}

// rounds returns the rounds of a row that have figures.
func (s Set) rounds(server string, k Key) []loadgen.Result {
	var out []loadgen.Result
	for _, r := range s[server][k] {
		if r.Error == "" && r.NA == "" && r.Ops > 0 {
			out = append(out, r)
		}
	}
	return out
}

// has reports whether a row exists at all for a server (with figures,
// an error or n/a).
func (s Set) has(server string, k Key) bool { return len(s[server][k]) > 0 }

// problem is why a row has no figures: n/a or failed.
func (s Set) problem(server string, k Key) string {
	for _, r := range s[server][k] {
		if r.NA != "" {
			return "n/a (" + r.NA + ")"
		}
	}
	for _, r := range s[server][k] {
		if r.Error != "" {
			return "failed"
		}
	}
	return "—"
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = append([]float64(nil), v...)
	sort.Float64s(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

func medianOf(rs []loadgen.Result, f func(loadgen.Result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	return median(v)
}

// get returns the median of a row's rounds: each figure (throughput,
// latencies, CPU per operation, calls per operation) is the median over
// the rounds of that figure.
func (s Set) get(server string, k Key) (loadgen.Result, bool) {
	rs := s.rounds(server, k)
	if len(rs) == 0 {
		return loadgen.Result{}, false
	}
	m := rs[0]
	m.Rounds = len(rs)
	m.OpsPerS = medianOf(rs, func(r loadgen.Result) float64 { return r.OpsPerS })
	m.MiBPerS = medianOf(rs, func(r loadgen.Result) float64 { return r.MiBPerS })
	m.P50us = medianOf(rs, func(r loadgen.Result) float64 { return r.P50us })
	m.P99us = medianOf(rs, func(r loadgen.Result) float64 { return r.P99us })
	m.ServerCPU = 0
	var cpu []float64
	for _, r := range rs {
		if c := cpuPerOp(r); c > 0 {
			cpu = append(cpu, c)
		}
	}
	if len(cpu) > 0 {
		// Carried as CPU per operation (per GiB for sequential workloads)
		// times the figure's own operations, so cpuPerOp(m) is the median.
		m.ServerCPU = median(cpu) * cpuUnits(m)
	}
	m.RPCs = nil
	for _, r := range rs {
		for p := range r.RPCs {
			if m.RPCs == nil {
				m.RPCs = map[string]float64{}
			}
			m.RPCs[p] = medianOf(rs, func(r loadgen.Result) float64 { return r.RPCs[p] })
		}
	}
	return m, true
}

// cpuUnits is what CPU is counted per: GiB for the sequential workloads,
// operations otherwise.
func cpuUnits(r loadgen.Result) float64 {
	if bytesWorkload(r.Workload) {
		return float64(r.Bytes) / (1 << 30)
	}
	return float64(r.Ops)
}

// cpuPerOp is the server's CPU seconds per GiB (sequential workloads) or
// per operation; 0 if unknown.
func cpuPerOp(r loadgen.Result) float64 {
	if r.ServerCPU <= 0 || cpuUnits(r) == 0 {
		return 0
	}
	return r.ServerCPU / cpuUnits(r)
}

// Spread is a ratio over the rounds: the median and the extremes.
type Spread struct {
	Median, Min, Max float64
	N                int
}

func (p Spread) String() string {
	if p.N <= 1 {
		return fmt.Sprintf("%.2f", p.Median)
	}
	return fmt.Sprintf("%.2f (%.2f–%.2f)", p.Median, p.Min, p.Max)
}

// Ratio is rwxnfs's figure over vs's for row k, taken within each round
// (the figures of one round were measured close together) and summed up
// over the rounds. vs is a server, or "lock-null": rwxnfs's own NLM NULL
// on the lock connection.
func (s Set) Ratio(k Key, vs string) (Spread, bool) {
	return s.ratioOf("rwxnfs", k, vs)
}

// LatencyRatio is vs's p50 latency over rwxnfs's for row k, per round,
// summed up over the rounds: above 1 when rwxnfs's typical operation is
// quicker. With one call in flight it is throughput's ratio without the
// weight of the slowest operations, which on a shared machine are the
// other jobs' doing.
func (s Set) LatencyRatio(k Key, vs string) (Spread, bool) {
	return pairRounds(s.rounds("rwxnfs", k), s.rounds(vs, k), func(a, b loadgen.Result) (float64, bool) {
		return b.P50us / a.P50us, a.P50us > 0 && b.P50us > 0
	})
}

func (s Set) ratioOf(server string, k Key, vs string) (Spread, bool) {
	a := s.rounds(server, k)
	var b []loadgen.Result
	if vs == "lock-null" {
		b = s.rounds(server, Key{Workload: "lock-null", Mode: k.Mode, Client: k.Client})
	} else {
		b = s.rounds(vs, k)
	}
	return pairRounds(a, b, func(a, b loadgen.Result) (float64, bool) {
		return value(a) / value(b), value(b) > 0
	})
}

// pairRounds applies f to the results of a and b from the same round and
// sums the values up.
func pairRounds(a, b []loadgen.Result, f func(a, b loadgen.Result) (float64, bool)) (Spread, bool) {
	byRound := map[int]loadgen.Result{}
	for _, r := range b {
		byRound[r.Round] = r
	}
	var v []float64
	for _, r := range a {
		if o, ok := byRound[r.Round]; ok {
			if x, ok := f(r, o); ok {
				v = append(v, x)
			}
		}
	}
	if len(v) == 0 {
		return Spread{}, false
	}
	p := Spread{Median: median(v), Min: v[0], Max: v[0], N: len(v)}
	for _, x := range v {
		p.Min, p.Max = min(p.Min, x), max(p.Max, x)
	}
	return p, true
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
	case w == "create" || w == "stat" || w == "getattr" || w == "setattr" || w == "rename" || w == "remove" || w == "meta":
		return "files/s"
	case w == "mkdir" || w == "rmdir":
		return "dirs/s"
	case w == "lock":
		return "pairs/s"
	}
	return "ops/s"
}
