// Package fuzzseed writes seed corpora for `go test -fuzz` targets: the
// committed files under testdata/fuzz are what plain `go test` runs
// through every target.
package fuzzseed

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Writer skips t unless the environment variable env is set, and returns
// a function that writes seed i of a fuzz target to
// testdata/fuzz/<target>/seedNN; body is the seed's values, one Go
// literal a line, in the "go test fuzz v1" format.
func Writer(t testing.TB, env string) func(target string, i int, body string) {
	t.Helper()
	if os.Getenv(env) == "" {
		t.Skipf("set %s=1 to rewrite testdata/fuzz", env)
	}
	return func(target string, i int, body string) {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed%02d", i)), []byte("go test fuzz v1\n"+body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
