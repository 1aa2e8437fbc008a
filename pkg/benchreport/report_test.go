package benchreport

import (
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReport(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "r.jsonl")
	lines := `{"server":"rwxnfs","workload":"null","ops":10,"seconds":1,"ops_per_s":200,"p50_us":5,"p99_us":9}
{"server":"ganesha","workload":"null","ops":10,"seconds":1,"ops_per_s":100,"p50_us":7,"p99_us":12}
{"server":"rwxnfs","workload":"seqwrite","ops":10,"seconds":1,"ops_per_s":10,"mib_per_s":300,"p50_us":5,"p99_us":9}
{"server":"limit","workload":"seqwrite","ops":10,"seconds":1,"ops_per_s":10,"mib_per_s":1000}
{"server":"go-nfs","workload":"lock","na":"server has no NLM"}
`
	if err := os.WriteFile(in, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Load(in)
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := s.Ratio("null", "ganesha"); !ok || r != 2 {
		t.Errorf("null ratio %v %v", r, ok)
	}
	md := filepath.Join(dir, "b.md")
	os.WriteFile(md, []byte("# title\n\n"+Begin+"\nold\n"+End+"\n\nprose after\n"), 0o644)
	if err := WriteMarkdown(md, s, "date: today"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(md)
	text := string(b)
	for _, want := range []string{"# title", "prose after", "**met** (2.00)", "**missed** (0.30)", "n/a (server has no NLM)", "| date | today |"} {
		if !strings.Contains(text, want) {
			t.Errorf("markdown lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "old") {
		t.Error("old generated section kept")
	}
	pngPath := filepath.Join(dir, "c.png")
	if err := WriteChart(pngPath, s); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(pngPath)
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Fatal(err)
	}
}
