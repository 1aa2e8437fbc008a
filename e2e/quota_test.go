package e2e

import (
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// showVolume returns "nfsd admin -o json show vol" decoded (int64 fields
// are JSON numbers; builds before issue 14 gave strings).
func (b *bed) showVolume(vol string) map[string]any {
	b.t.Helper()
	out, err := b.admin("-o", "json", "show", vol)
	if err != nil {
		b.t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		b.t.Fatalf("admin show %s: %v\n%s", vol, err, out)
	}
	return v
}

func num(v any) int64 {
	switch x := v.(type) {
	case string:
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	case float64:
		return int64(x)
	}
	return 0
}

// TestQuotaEDQUOT: a volume created through the admin API with an 8 MiB
// limit shows 8 MiB as its size in df on the node; writing past it fails
// with EDQUOT ("Disk quota exceeded") and the server's usage matches
// what is on its disk.
func TestQuotaEDQUOT(t *testing.T) {
	b := newBed(t, 1)
	const limit = 8 << 20
	if out, err := b.admin("create", "q1", "8Mi"); err != nil {
		t.Fatal(err)
	} else {
		t.Logf("admin create q1 8Mi:\n%s", out)
	}
	n := b.nodes[0]
	n.mount("q1", "vers=3")
	df := n.must("df -P -k /mnt/q1 | tail -1", 30*time.Second)
	f := strings.Fields(df)
	if len(f) < 4 || f[1] != strconv.Itoa(limit>>10) {
		t.Fatalf("df on the node shows %q, want size %d KiB", df, limit>>10)
	}
	t.Logf("df: %s", strings.TrimSpace(df))
	out, rc, err := n.sh("dd if=/dev/zero of=/mnt/q1/fill bs=64k count=1024 conv=fsync 2>&1; echo rc=$?", 3*time.Minute)
	if err != nil || rc != 0 {
		t.Fatalf("dd: rc=%d %v\n%s", rc, err, out)
	}
	t.Logf("dd 64 MiB into the 8 MiB volume:\n%s", strings.TrimSpace(out))
	if !strings.Contains(out, "Disk quota exceeded") || strings.Contains(out, "rc=0") {
		t.Fatalf("dd past the limit did not fail with EDQUOT:\n%s", out)
	}
	n.must("sync; ls -l /mnt/q1/fill", 30*time.Second)
	st, err := os.Stat(b.volPath("q1") + "/fill")
	if err != nil {
		t.Fatal(err)
	}
	v := b.showVolume("q1")
	used := num(v["usedBytes"])
	t.Logf("server: file %d bytes on disk; admin show: usedBytes=%d capacityBytes=%d", st.Size(), used, num(v["capacityBytes"]))
	if num(v["capacityBytes"]) != limit {
		t.Errorf("capacityBytes = %d, want %d", num(v["capacityBytes"]), limit)
	}
	if st.Size() > limit || used > limit {
		t.Errorf("over the limit: file %d, used %d, limit %d", st.Size(), used, limit)
	}
	if st.Size() < limit/2 {
		t.Errorf("EDQUOT came early: only %d of %d bytes written", st.Size(), limit)
	}
	// Usage counts data blocks plus directory entries; it must match
	// the file's size to within a few KiB of metadata.
	if d := used - st.Size(); d < 0 || d > 64<<10 {
		t.Errorf("server usage %d does not match the %d bytes on disk", used, st.Size())
	}
	// After deleting the file the space is back.
	n.must("rm /mnt/q1/fill && dd if=/dev/zero of=/mnt/q1/again bs=64k count=16 conv=fsync", time.Minute)
}
