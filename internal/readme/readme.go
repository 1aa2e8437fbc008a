// Package readme reads the commands out of README.md, so that tests run
// exactly what the README tells an operator to type.
package readme

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// Path is README.md at the module root.
func Path() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "README.md")
}

// Commands are the README's command lines.
type Commands struct {
	// Quick is the first indented block's lines (trailing comments cut):
	// serve, then make test.
	Quick []string
	// FirstHour is every line of the sh block of "## The first hour",
	// comments and blank lines left out.
	FirstHour []string
}

// Read parses README.md.
func Read() (Commands, error) {
	b, err := os.ReadFile(Path())
	if err != nil {
		return Commands{}, err
	}
	return Parse(string(b))
}

// Parse reads the commands out of a README's text.
func Parse(text string) (Commands, error) {
	var c Commands
	for _, l := range strings.Split(text, "\n") {
		line, indented := strings.CutPrefix(l, "    ")
		if !indented {
			if len(c.Quick) > 0 {
				break
			}
			continue
		}
		line, _, _ = strings.Cut(line, "#")
		c.Quick = append(c.Quick, strings.TrimSpace(line))
	}
	_, sec, ok := strings.Cut(text, "\n## The first hour\n")
	if !ok {
		return c, errors.New(`README.md has no "## The first hour" section`)
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	_, block, ok := strings.Cut(sec, "```sh\n")
	if !ok {
		return c, errors.New("the first hour has no ```sh block")
	}
	block, _, _ = strings.Cut(block, "```")
	for _, l := range strings.Split(block, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			c.FirstHour = append(c.FirstHour, l)
		}
	}
	if len(c.Quick) != 2 || len(c.FirstHour) < 10 {
		return c, fmt.Errorf("README commands: %d first lines (want 2), %d first-hour lines", len(c.Quick), len(c.FirstHour))
	}
	return c, nil
}
