package benchreport

import (
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Three rounds where the two servers' figures move together: the ratio is
// taken within each round, so it is steady (2, 2, 2.5 → median 2) though
// the absolute figures swing threefold.
const lines = `{"server":"rwxnfs","workload":"null","round":1,"ops":10,"seconds":1,"ops_per_s":200,"p50_us":5,"p99_us":9}
{"server":"ganesha","workload":"null","round":1,"ops":10,"seconds":1,"ops_per_s":100,"p50_us":7,"p99_us":12}
{"server":"rwxnfs","workload":"null","round":2,"ops":10,"seconds":1,"ops_per_s":600,"p50_us":3,"p99_us":7}
{"server":"ganesha","workload":"null","round":2,"ops":10,"seconds":1,"ops_per_s":300,"p50_us":6,"p99_us":10}
{"server":"rwxnfs","workload":"null","round":3,"ops":10,"seconds":1,"ops_per_s":250,"p50_us":4,"p99_us":8}
{"server":"ganesha","workload":"null","round":3,"ops":10,"seconds":1,"ops_per_s":100,"p50_us":6,"p99_us":11}
{"server":"rwxnfs","workload":"seqwrite","round":1,"ops":10,"bytes":1073741824,"seconds":1,"ops_per_s":10,"mib_per_s":300,"p50_us":5,"p99_us":9,"server_cpu_s":2}
{"server":"limit","workload":"seqwrite","round":1,"ops":10,"seconds":1,"ops_per_s":10,"mib_per_s":1000}
{"server":"go-nfs","workload":"lock","na":"server has no NLM"}
{"server":"rwxnfs","workload":"lock","round":1,"ops":10,"seconds":1,"ops_per_s":60}
{"server":"rwxnfs","workload":"lock-null","round":1,"ops":10,"seconds":1,"ops_per_s":100}
{"server":"rwxnfs","workload":"lock","round":2,"ops":10,"seconds":1,"ops_per_s":40}
{"server":"rwxnfs","workload":"lock-null","round":2,"ops":10,"seconds":1,"ops_per_s":100}
{"server":"rwxnfs","workload":"lock","round":3,"ops":10,"seconds":1,"ops_per_s":70}
{"server":"rwxnfs","workload":"lock-null","round":3,"ops":10,"seconds":1,"ops_per_s":100}
{"server":"rwxnfs","workload":"stat","mode":"one","round":1,"ops":2000,"seconds":1,"ops_per_s":2000,"p50_us":400,"p99_us":900,"server_cpu_s":0.1,"rpcs_per_op":{"Lookup":3}}
{"server":"ganesha","workload":"stat","mode":"one","round":1,"ops":2000,"seconds":1,"ops_per_s":1000,"p50_us":800,"p99_us":1500,"server_cpu_s":0.4}
{"server":"rwxnfs","workload":"stat","mode":"one","client":"libnfs","round":1,"ops":2000,"seconds":1,"ops_per_s":900,"p50_us":1000,"p99_us":2000,"rpcs_per_op":{"Lookup":3,"GetAttr":1}}
{"server":"ganesha","workload":"stat","mode":"one","client":"libnfs","round":1,"ops":2000,"seconds":1,"ops_per_s":1000,"p50_us":950,"p99_us":1900}
{"server":"go-nfs","workload":"rename","mode":"one","error":"nfs RENAME: NFS3ERR_IO"}
`

func load(t *testing.T) Set {
	t.Helper()
	in := filepath.Join(t.TempDir(), "r.jsonl")
	if err := os.WriteFile(in, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Load(in)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMediansAndRatios(t *testing.T) {
	s := load(t)
	p, ok := s.Ratio(Many("null"), "ganesha")
	if !ok || p.Median != 2 || p.Min != 2 || p.Max != 2.5 || p.N != 3 {
		t.Errorf("null ratio %+v %v, want median 2 over 3 rounds, 2–2.5", p, ok)
	}
	// The figure is the median round's, not the best.
	if r, _ := s.get("rwxnfs", Many("null")); r.OpsPerS != 250 || r.P50us != 4 {
		t.Errorf("median null %+v, want 250 ops/s, p50 4", r)
	}
	// Modes and clients are rows of their own.
	if p, ok := s.Ratio(One("stat"), "ganesha"); !ok || p.Median != 2 {
		t.Errorf("one-call stat ratio %+v %v", p, ok)
	}
	if p, ok := s.Ratio(Libnfs("stat"), "ganesha"); !ok || p.Median != 0.9 {
		t.Errorf("libnfs stat ratio %+v %v", p, ok)
	}
	// p50s 400 and 800 µs: ganesha's typical stat takes twice as long.
	if p, ok := s.LatencyRatio(One("stat"), "ganesha"); !ok || p.Median != 2 {
		t.Errorf("one-call stat latency ratio %+v %v", p, ok)
	}
	if _, ok := s.Ratio(Many("stat"), "ganesha"); ok {
		t.Error("many-in-flight stat has a ratio, but only one-call figures exist")
	}
	// lock ÷ lock-null: 0.6, 0.4, 0.7: the median meets 0.5, one round does not.
	if p, ok := s.Ratio(Many("lock"), "lock-null"); !ok || p.Median != 0.6 || p.Min != 0.4 {
		t.Errorf("lock ratio %+v %v", p, ok)
	}
}

func TestMarkdown(t *testing.T) {
	s := load(t)
	md := filepath.Join(t.TempDir(), "b.md")
	os.WriteFile(md, []byte("# title\n\n"+Begin+"\nold\n"+End+"\n\nprose after\n"), 0o644)
	if err := WriteMarkdown(md, s, "date: today"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(md)
	text := string(b)
	for _, want := range []string{
		"# title", "prose after", "| date | today |",
		"median of 3 interleaved rounds",
		"| null | ops/s | **250** · 4 µs / 8 µs | **100** · 6 µs / 11 µs |",
		"| many in flight | null | ≥ 1 ÷ ganesha | 2.00 (2.00–2.50) | **met** (2.00) | — |",
		"| many in flight | seqwrite | ≥ 0.5 ÷ limit | 0.30 | **missed** (0.30) | — |",
		// Lock must hold in every round: judged on the lowest.
		"| many in flight | lock | ≥ 0.5 ÷ NLM NULL, same connection, every round | 0.60 (0.40–0.70) | **missed** (0.40) | — |",
		"| one call | stat | ≥ 1.5 ÷ ganesha | 2.00 | **met** (2.00) | 2.00 |",
		"| one call, via libnfs | stat | ≥ 1.5 ÷ ganesha | 0.90 | **missed** (0.90) | 0.95 |",
		"| stat | LOOKUP of 3 path components | LOOKUP 3 | **2,000** · 400 µs / 900 µs | **1,000** · 800 µs / 1.5 ms |",
		"| stat | nfs_stat64(path) | GETATTR 1, LOOKUP 3 |",
		"| rename | RENAME | — | — | — | failed | — |",
		"| stat | — | 2.00 | 2.00 | 0.90 | 0.95 | — | — | — |",
		"n/a (server has no NLM)",
		// CPU: 2 s for 1 GiB; 50 µs and 200 µs per one-call stat.
		"| seqwrite | CPU-s/GiB | 2.00 |",
		"| stat | µs/op | — | — | — | — | 50.0 | 200 | — | 4.00 |",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("markdown lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "old") {
		t.Error("old generated section kept")
	}
}

func TestChart(t *testing.T) {
	s := load(t)
	pngPath := filepath.Join(t.TempDir(), "c.png")
	if err := WriteChart(pngPath, s); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(pngPath)
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Fatal(err)
	}
}
