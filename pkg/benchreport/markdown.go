package benchreport

import (
	"fmt"
	"os"
	"sort"
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
	key   Key
	vs    string // "ganesha", "limit", or "lock-null" (rwxnfs's own NULL on the NLM connection)
	min   float64
	every bool // must hold in every round, not only in the median
}

var targets = func() []target {
	t := []target{
		{Many("null"), "ganesha", 1.0, false},
		{Many("seqwrite"), "ganesha", 1.0, false},
		{Many("seqwrite"), "limit", 0.5, false},
		{Many("seqread"), "ganesha", 1.0, false},
		{Many("seqread"), "limit", 0.5, false},
		{Many("randread"), "ganesha", 1.0, false},
		{Many("create"), "ganesha", 1.5, false},
		{Many("stat"), "ganesha", 1.5, false},
		{Many("remove"), "ganesha", 1.5, false},
		{Many("meta"), "ganesha", 1.5, false},
		{Many("readdir"), "ganesha", 1.5, false},
		{Many("lock"), "lock-null", 0.5, true},
	}
	// Issue 12: one call in flight, whichever client makes the calls.
	for _, mk := range []func(string) Key{One, Libnfs} {
		for _, g := range []struct {
			w   string
			min float64
		}{{"stat", 1.5}, {"getattr", 1.5}, {"create", 1.2}, {"rename", 1.2}, {"remove", 1.2}, {"readdir", 1.5}} {
			t = append(t, target{mk(g.w), "ganesha", g.min, false})
		}
	}
	return t
}()

// oneWhat says what one operation of a one-call workload is.
var oneWhat = map[Key]string{
	One("null"):       "NULL: the round trip alone",
	One("create"):     "CREATE, WRITE 4 KiB FILE_SYNC",
	One("stat"):       "LOOKUP of 3 path components",
	One("getattr"):    "GETATTR",
	One("setattr"):    "SETATTR mode (chmod)",
	One("rename"):     "RENAME",
	One("remove"):     "REMOVE",
	One("mkdir"):      "MKDIR",
	One("rmdir"):      "RMDIR",
	One("readdir"):    "READDIRPLUS listing",
	Libnfs("create"):  "nfs_creat, nfs_write 4 KiB, nfs_close",
	Libnfs("stat"):    "nfs_stat64(path)",
	Libnfs("getattr"): "nfs_fstat64(open file)",
	Libnfs("setattr"): "nfs_chmod(path)",
	Libnfs("rename"):  "nfs_rename(path, path)",
	Libnfs("remove"):  "nfs_unlink(path)",
	Libnfs("mkdir"):   "nfs_mkdir(path)",
	Libnfs("rmdir"):   "nfs_rmdir(path)",
	Libnfs("readdir"): "nfs_opendir + nfs_readdir",
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

func (s Set) cell(server string, k Key) string {
	r, ok := s.get(server, k)
	if !ok {
		return s.problem(server, k)
	}
	c := "**" + fmtNum(value(r)) + "**"
	if r.P50us > 0 {
		c += " · " + fmtLat(r.P50us) + " / " + fmtLat(r.P99us)
	}
	return c
}

// rpcs formats the calls per operation rwxnfs counted, e.g. "LOOKUP 3,
// GETATTR 1".
func rpcs(m map[string]float64) string {
	if len(m) == 0 {
		return "—"
	}
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var parts []string
	for _, k := range ks {
		v := m[k]
		n := fmt.Sprintf("%.1f", v)
		if v >= 0.95 && v-float64(int64(v+0.5)) < 0.05 && float64(int64(v+0.5))-v < 0.05 {
			n = fmt.Sprint(int64(v + 0.5))
		}
		parts = append(parts, strings.ToUpper(k)+" "+n)
	}
	return strings.Join(parts, ", ")
}

// rounds is how many rounds a set's figures come from, for the headings.
func (s Set) roundCount() int {
	n := 0
	for _, byKey := range s {
		for _, rs := range byKey {
			for _, r := range rs {
				n = max(n, r.Round, r.Rounds)
			}
		}
	}
	return max(n, 1)
}

func (s Set) anyRow(k Key) bool {
	for _, sv := range Servers {
		if s.has(sv, k) {
			return true
		}
	}
	return false
}

func latencyCell(s Set, k Key, vs string) string {
	if p, ok := s.LatencyRatio(k, vs); ok {
		return p.String()
	}
	return "—"
}

func ratioCell(s Set, k Key, vs string) string {
	if p, ok := s.Ratio(k, vs); ok {
		return p.String()
	}
	return "—"
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
	n := s.roundCount()
	fmt.Fprintf(&b, "\nEvery figure is the median of %d interleaved rounds; every ratio is the median of the %d rounds' ratios, each taken within one round, with the lowest and highest in brackets.\n", n, n)

	fmt.Fprintln(&b, "\n### Many calls in flight\n\n8 connections with 16 calls in flight on each (metadata: 8 clients, each in a directory of its own; readdir: 8 listings at once, each on its own connection; lock: 16 lock owners on one connection). Each cell: **throughput** · latency p50 / p99 per call.")
	fmt.Fprintln(&b, "\n| workload | unit | rwxnfs | ganesha | go-nfs | limit |\n|---|---|---|---|---|---|")
	for _, w := range Order {
		if !s.anyRow(Many(w)) {
			continue
		}
		fmt.Fprintf(&b, "| %s | %s |", w, unit(w))
		for _, sv := range Servers {
			fmt.Fprintf(&b, " %s |", s.cell(sv, Many(w)))
		}
		fmt.Fprintln(&b)
	}

	for _, mk := range []func(string) Key{One, Libnfs} {
		if mk("create").Client == "" {
			fmt.Fprintln(&b, "\n### One call in flight\n\nOne connection; each call is sent when the reply to the one before is in, as one program doing one thing at a time (a CMS saving uploads, a build tool stat-ing its inputs). *limit*: NULL against nfsbench's RPC echo server, the round trip with the cheapest server there is. Each cell: **operations/s** · latency p50 / p99 per operation (readdir: **entries/s** · time per listing). *RPCs* are the NFS calls one operation made, as rwxnfs counted them (per listing for readdir).")
			fmt.Fprintln(&b, "\n| workload | one operation | RPCs | rwxnfs | ganesha | go-nfs | limit |\n|---|---|---|---|---|---|---|")
		} else {
			fmt.Fprintln(&b, "\n### One call in flight, through libnfs\n\nThe same workloads made through libnfs's synchronous API (Debian's libnfs 4, `bench/libnfs-onecall.c`), a client we did not write: calls take paths, and libnfs looks each path up from the mount root every time, so an operation is several RPCs. Directory cache off (`dircache=0`), so each listing reaches the server.")
			fmt.Fprintln(&b, "\n| workload | libnfs calls | RPCs | rwxnfs | ganesha | go-nfs |\n|---|---|---|---|---|---|")
		}
		for _, w := range OneOrder {
			k := mk(w)
			if !s.anyRow(k) {
				continue
			}
			r, _ := s.get("rwxnfs", k)
			fmt.Fprintf(&b, "| %s | %s | %s |", w, oneWhat[k], rpcs(r.RPCs))
			for _, sv := range Servers[:3] {
				fmt.Fprintf(&b, " %s |", s.cell(sv, k))
			}
			if k.Client == "" {
				// The limit: NULL against the RPC echo server.
				fmt.Fprintf(&b, " %s |", s.cell("limit", k))
			}
			fmt.Fprintln(&b)
		}
	}

	fmt.Fprintln(&b, "\n### rwxnfs ÷ ganesha and ÷ go-nfs, both modes side by side\n\nHigher is better for rwxnfs: throughput over throughput (for one call in flight, the inverse of the mean time per operation, as the targets count it). *p50*: the peer's median latency over rwxnfs's, which the slowest operations (on a shared machine, mostly the other jobs' doing) do not sway.")
	fmt.Fprintln(&b, "\n| workload | ÷ ganesha, many in flight | ÷ ganesha, one call | one call, p50 | ÷ ganesha, one call via libnfs | via libnfs, p50 | ÷ go-nfs, many | ÷ go-nfs, one call | ÷ go-nfs, one call via libnfs |\n|---|---|---|---|---|---|---|---|---|")
	for _, w := range Order {
		if w == "lock-null" || !s.has("rwxnfs", Many(w)) && !s.has("rwxnfs", One(w)) && !s.has("rwxnfs", Libnfs(w)) {
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |", w,
			ratioCell(s, Many(w), "ganesha"), ratioCell(s, One(w), "ganesha"), latencyCell(s, One(w), "ganesha"),
			ratioCell(s, Libnfs(w), "ganesha"), latencyCell(s, Libnfs(w), "ganesha"))
		for _, k := range []Key{Many(w), One(w), Libnfs(w)} {
			fmt.Fprintf(&b, " %s |", ratioCell(s, k, "go-nfs"))
		}
		fmt.Fprintln(&b)
	}

	cpuTable(&b, s)
	targetTable(&b, s)
	fmt.Fprintln(&b, "\n"+End)
	return b.String()
}

func cpuTable(b *strings.Builder, s Set) {
	fmt.Fprintln(b, "\n### Server CPU per operation\n\nCPU time (user + system, all threads) the server process used during the workload, divided by its operations (per GiB for the sequential workloads, per entry for readdir, per pair for lock). It is far less sensitive than throughput to the other jobs on the machine. Lower is better.")
	fmt.Fprintln(b, "\n| workload | unit | many: rwxnfs | ganesha | go-nfs | ganesha ÷ rwxnfs | one call: rwxnfs | ganesha | go-nfs | ganesha ÷ rwxnfs |\n|---|---|---|---|---|---|---|---|---|---|")
	for _, w := range Order {
		if w == "lock-null" {
			continue
		}
		var cells []string
		anyCPU := false
		for _, k := range []Key{Many(w), One(w)} {
			cpu := map[string]float64{}
			for _, sv := range Servers[:3] {
				if r, ok := s.get(sv, k); ok {
					if c := cpuPerOp(r); c > 0 {
						cpu[sv] = c
						anyCPU = true
					}
				}
			}
			for _, sv := range Servers[:3] {
				if v, ok := cpu[sv]; ok {
					if !bytesWorkload(w) {
						v *= 1e6
					}
					cells = append(cells, fmtNum(v))
				} else {
					cells = append(cells, "—")
				}
			}
			if cpu["rwxnfs"] > 0 && cpu["ganesha"] > 0 {
				cells = append(cells, fmt.Sprintf("%.2f", cpu["ganesha"]/cpu["rwxnfs"]))
			} else {
				cells = append(cells, "—")
			}
		}
		if !anyCPU {
			continue
		}
		u := "µs/op"
		switch {
		case bytesWorkload(w):
			u = "CPU-s/GiB"
		case w == "meta":
			u = "µs/file (3 calls)"
		}
		fmt.Fprintf(b, "| %s | %s | %s |\n", w, u, strings.Join(cells, " | "))
	}
}

func targetTable(b *strings.Builder, s Set) {
	fmt.Fprintln(b, "\n### Targets\n\nrwxnfs ÷ the peer in the same round; *met* when the median of the rounds reaches the target (for lock, when every round does). For one call in flight the target counts throughput, the inverse of the mean time per operation; *p50* beside it is the same comparison by median latency, which the slowest operations do not sway: a target met by one and not the other rests on the tails.")
	fmt.Fprintln(b, "\n| mode | workload | target | result: median (lowest–highest) | met? | p50 |\n|---|---|---|---|---|---|")
	for _, t := range targets {
		if !s.has("rwxnfs", t.key) {
			continue
		}
		mode := "many in flight"
		switch {
		case t.key.Client != "":
			mode = "one call, via " + t.key.Client
		case t.key.Mode != "":
			mode = "one call"
		}
		name := "÷ " + t.vs
		if t.vs == "lock-null" {
			name = "÷ NLM NULL, same connection"
		}
		goal := fmt.Sprintf("≥ %.2g %s", t.min, name)
		if t.every {
			goal += ", every round"
		}
		p, ok := s.Ratio(t.key, t.vs)
		res, met := "no figure", "—"
		if ok {
			res = p.String()
			v := p.Median
			if t.every {
				v = p.Min
			}
			met = fmt.Sprintf("**missed** (%.2f)", v)
			if v >= t.min {
				met = fmt.Sprintf("**met** (%.2f)", v)
			}
		}
		lat := "—"
		if t.key.Mode != "" {
			lat = latencyCell(s, t.key, t.vs)
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s |\n", mode, t.key.Workload, goal, res, met, lat)
	}
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
