package benchreport

import (
	"fmt"
	"os"
	"strings"
)

// Markers delimit the generated part of docs/benchmarks.md; the prose
// around them is written by hand and kept.
const (
	Begin = "<!-- nfsbench report: generated, do not edit by hand -->"
	End   = "<!-- end of nfsbench report -->"
)

// target is a ratio goal for rwxnfs against a peer (or the limit).
type target struct {
	workload string
	vs       string // "ganesha", "limit", or "lock-null" (rwxnfs's own NULL on the NLM connection)
	min      float64
}

var targets = []target{
	{"create", "ganesha", 1.5},
	{"stat", "ganesha", 1.5},
	{"remove", "ganesha", 1.5},
	{"meta", "ganesha", 1.5},
	{"readdir", "ganesha", 1.5},
	{"seqwrite", "ganesha", 1.0},
	{"seqwrite", "limit", 0.5},
	{"seqread", "ganesha", 1.0},
	{"seqread", "limit", 0.5},
	{"randread", "ganesha", 1.0},
	{"null", "ganesha", 1.0},
	{"lock", "lock-null", 0.5},
}

func fmtNum(v float64) string {
	switch {
	case v >= 100:
		return commas(int64(v + 0.5))
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func commas(n int64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func fmtLat(us float64) string {
	switch {
	case us >= 10000:
		return fmt.Sprintf("%.0f ms", us/1000)
	case us >= 1000:
		return fmt.Sprintf("%.1f ms", us/1000)
	}
	return fmt.Sprintf("%.0f µs", us)
}

func (s Set) cell(server, w string) string {
	r, ok := s.get(server, w)
	if !ok {
		if x, there := s[server][w]; there {
			if x.NA != "" {
				return "n/a (" + x.NA + ")"
			}
			if x.Error != "" {
				return "failed"
			}
		}
		return "—"
	}
	c := "**" + fmtNum(value(r)) + "**"
	if r.P50us > 0 {
		c += " · " + fmtLat(r.P50us) + " / " + fmtLat(r.P99us)
	}
	return c
}

// Ratio is rwxnfs's figure over another's.
func (s Set) Ratio(w, vs string) (float64, bool) {
	a, ok := s.get("rwxnfs", w)
	if !ok {
		return 0, false
	}
	var b = a
	if vs == "lock-null" {
		b, ok = s.get("rwxnfs", "lock-null")
	} else {
		b, ok = s.get(vs, w)
	}
	if !ok || value(b) == 0 {
		return 0, false
	}
	return value(a) / value(b), true
}

// Markdown renders the generated section.
func Markdown(s Set, machine string) string {
	var b strings.Builder
	fmt.Fprintln(&b, Begin)
	if machine != "" {
		fmt.Fprintln(&b, "\n| run | |\n|---|---|")
		for _, l := range strings.Split(strings.TrimSpace(machine), "\n") {
			k, v, _ := strings.Cut(l, ":")
			fmt.Fprintf(&b, "| %s | %s |\n", strings.TrimSpace(k), strings.ReplaceAll(strings.TrimSpace(v), "|", "\\|"))
		}
	}
	fmt.Fprintln(&b, "\n### Absolute figures\n\nEach cell: **throughput** · latency p50 / p99 per call.")
	fmt.Fprintln(&b, "\n| workload | unit | rwxnfs | ganesha | go-nfs | limit |\n|---|---|---|---|---|---|")
	for _, w := range Order {
		any := false
		for _, sv := range Servers {
			if _, ok := s[sv][w]; ok {
				any = true
			}
		}
		if !any {
			continue
		}
		fmt.Fprintf(&b, "| %s | %s |", w, unit(w))
		for _, sv := range Servers {
			fmt.Fprintf(&b, " %s |", s.cell(sv, w))
		}
		fmt.Fprintln(&b)
	}
	fmt.Fprintln(&b, "\n### Server CPU per operation\n\nCPU time (user + system, all threads) the server process used during the workload, divided by its operations (per GiB for the sequential workloads). It is far less sensitive than throughput to the other jobs on the machine. Lower is better.")
	fmt.Fprintln(&b, "\n| workload | unit | rwxnfs | ganesha | go-nfs | ganesha ÷ rwxnfs |\n|---|---|---|---|---|---|")
	for _, w := range Order {
		if w == "lock-null" {
			continue
		}
		cpu := map[string]float64{}
		for _, sv := range Servers[:3] {
			if r, ok := s.get(sv, w); ok && r.ServerCPU > 0 {
				if bytesWorkload(w) {
					cpu[sv] = r.ServerCPU / (float64(r.Bytes) / (1 << 30))
				} else {
					cpu[sv] = r.ServerCPU / float64(r.Ops) * 1e6
				}
			}
		}
		if len(cpu) == 0 {
			continue
		}
		u := "µs/op"
		if bytesWorkload(w) {
			u = "CPU-s/GiB"
		}
		if w == "meta" {
			u = "µs/file (3 calls)"
		}
		fmt.Fprintf(&b, "| %s | %s |", w, u)
		for _, sv := range Servers[:3] {
			if v, ok := cpu[sv]; ok {
				fmt.Fprintf(&b, " %s |", fmtNum(v))
			} else {
				fmt.Fprint(&b, " — |")
			}
		}
		if cpu["rwxnfs"] > 0 && cpu["ganesha"] > 0 {
			fmt.Fprintf(&b, " %.2f |\n", cpu["ganesha"]/cpu["rwxnfs"])
		} else {
			fmt.Fprintln(&b, " — |")
		}
	}
	fmt.Fprintln(&b, "\n### Ratios and targets\n\n| workload | rwxnfs ÷ ganesha | rwxnfs ÷ go-nfs | rwxnfs ÷ limit | target | met? |\n|---|---|---|---|---|---|")
	ratio := func(w, vs string) string {
		if r, ok := s.Ratio(w, vs); ok {
			return fmt.Sprintf("%.2f", r)
		}
		return "—"
	}
	tg := map[string][]target{}
	for _, t := range targets {
		tg[t.workload] = append(tg[t.workload], t)
	}
	for _, w := range Order {
		if w == "lock-null" {
			continue
		}
		if _, ok := s["rwxnfs"][w]; !ok {
			continue
		}
		var goals, met []string
		for _, t := range tg[w] {
			name := "÷ " + t.vs
			if t.vs == "lock-null" {
				name = "÷ NLM NULL (same connection)"
			}
			goals = append(goals, fmt.Sprintf("≥ %.2g %s", t.min, name))
			r, ok := s.Ratio(w, t.vs)
			switch {
			case !ok:
				met = append(met, "no figure")
			case r >= t.min:
				met = append(met, fmt.Sprintf("**met** (%.2f)", r))
			default:
				met = append(met, fmt.Sprintf("**missed** (%.2f)", r))
			}
		}
		g, m := strings.Join(goals, "; "), strings.Join(met, "; ")
		if g == "" {
			g, m = "—", "—"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", w, ratio(w, "ganesha"), ratio(w, "go-nfs"), ratio(w, "limit"), g, m)
	}
	fmt.Fprintln(&b, "\n"+End)
	return b.String()
}

// WriteMarkdown replaces the generated section of path (appending one if
// the file has none).
func WriteMarkdown(path string, s Set, machine string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	gen := Markdown(s, machine)
	text := string(old)
	i, j := strings.Index(text, Begin), strings.Index(text, End)
	if i >= 0 && j > i {
		text = text[:i] + gen + text[j+len(End)+1:]
	} else {
		text += "\n" + gen
	}
	return os.WriteFile(path, []byte(text), 0o644)
}
