package admin

import "testing"

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "4096": 4096, "1.5Gi": 3 << 29, "1.5gi": 3 << 29, "1.5GiB": 3 << 29, "10G": 10e9, "10GB": 10e9,
		"10gb": 10e9, "10g": 10e9, "500mi": 500 << 20, "500Mi": 500 << 20, "1K": 1000, "1Ki": 1024, "2T": 2e12,
		"1Pi": 1 << 50, ".5Ki": 512, "1.0001K": 1001, "100B": 100, "3b": 3,
	} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-", "Gi", "1.2.3G", "10X", "-1", "1e3", "9999999Pi", "1 0G", "."} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
}
