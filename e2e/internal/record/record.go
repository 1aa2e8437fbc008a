// Package record is the self-checking fixed-size record that e2e node
// programs append to shared files and the host verifies.
//
// A record is one line of exactly Size bytes:
//
//	R <writer> <seq> <crc32> ....padding....\n
//
// writer is a short id (e.g. "node0.p3"), seq a zero-padded counter from
// 1, crc32 (IEEE, hex) covers "R <writer> <seq>". A torn, overwritten or
// interleaved record fails the length or checksum test.
package record

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"sort"
	"strconv"
	"strings"
)

// Make returns writer's record number seq, size bytes long.
func Make(writer string, seq, size int) ([]byte, error) {
	head := fmt.Sprintf("R %s %08d", writer, seq)
	line := fmt.Sprintf("%s %08x ", head, crc32.ChecksumIEEE([]byte(head)))
	if len(line)+1 > size {
		return nil, fmt.Errorf("record size %d too small for %q", size, line)
	}
	b := make([]byte, size)
	copy(b, line)
	for i := len(line); i < size-1; i++ {
		b[i] = '.'
	}
	b[size-1] = '\n'
	return b, nil
}

// Parse checks one line (without its newline) and returns writer and seq.
func Parse(line []byte, size int) (string, int, bool) {
	if len(line) != size-1 {
		return "", 0, false
	}
	f := strings.Fields(string(line))
	if len(f) != 5 || f[0] != "R" || strings.Trim(f[4], ".") != "" {
		return "", 0, false
	}
	head := "R " + f[1] + " " + f[2]
	sum, err := strconv.ParseUint(f[3], 16, 32)
	if err != nil || uint32(sum) != crc32.ChecksumIEEE([]byte(head)) {
		return "", 0, false
	}
	seq, err := strconv.Atoi(f[2])
	if err != nil {
		return "", 0, false
	}
	return f[1], seq, true
}

// Report is what Verify found in a file.
type Report struct {
	Valid     int            // well-formed records
	Torn      int            // lines that are not a well-formed record
	Dups      int            // records seen more than once
	OutOfOrd  int            // records whose seq is not above the writer's previous one
	Lost      int            // expected records missing
	PerWriter map[string]int // distinct records per writer
}

// OK reports a perfect file: every expected record exactly once, in order.
func (r Report) OK() bool { return r.Torn == 0 && r.Dups == 0 && r.OutOfOrd == 0 && r.Lost == 0 }

func (r Report) String() string {
	ws := make([]string, 0, len(r.PerWriter))
	for w, n := range r.PerWriter {
		ws = append(ws, fmt.Sprintf("%s=%d", w, n))
	}
	sort.Strings(ws)
	return fmt.Sprintf("valid=%d torn=%d dups=%d outOfOrder=%d lost=%d writers=[%s]",
		r.Valid, r.Torn, r.Dups, r.OutOfOrd, r.Lost, strings.Join(ws, " "))
}

// Verify checks data against the expectation that each writer in
// writers appended records 1..want[writer] in order. A writer absent
// from want is counted but expects nothing (Lost is not computed for it).
func Verify(data []byte, size int, want map[string]int) Report {
	r := Report{PerWriter: map[string]int{}}
	seen := map[string]map[int]bool{}
	last := map[string]int{}
	for _, line := range bytes.Split(data, []byte{'\n'}) {
		if len(line) == 0 {
			continue
		}
		// A torn write can leave NULs or a half record glued to a
		// whole one; count the line as torn and move on.
		w, seq, ok := Parse(line, size)
		if !ok {
			r.Torn++
			continue
		}
		r.Valid++
		if seen[w] == nil {
			seen[w] = map[int]bool{}
		}
		if seen[w][seq] {
			r.Dups++
			continue
		}
		seen[w][seq] = true
		r.PerWriter[w]++
		if seq <= last[w] {
			r.OutOfOrd++
		}
		last[w] = seq
	}
	for w, n := range want {
		for s := 1; s <= n; s++ {
			if !seen[w][s] {
				r.Lost++
			}
		}
	}
	return r
}
