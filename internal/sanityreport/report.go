// Package sanityreport reads the JUnit report of a csi-sanity run
// (ginkgo --ginkgo.junit-report): what passed, what failed, and which
// specs csi-sanity skipped by itself, with its reason (a capability the
// driver does not advertise), apart from those a --ginkgo.focus left out.
package sanityreport

import (
	"encoding/xml"
	"sort"
	"strings"
)

// Result summarises a run.
type Result struct {
	Passed, Failed int
	Skipped        []string // by csi-sanity itself: "spec: reason"
	NotRun         int      // left out by --ginkgo.focus
	Failures       []string // "spec: message"
}

type junit struct {
	Suites []struct {
		Cases []struct {
			Name    string `xml:"name,attr"`
			Status  string `xml:"status,attr"`
			Skipped *struct {
				Message string `xml:"message,attr"`
			} `xml:"skipped"`
			Failure *struct {
				Message string `xml:"message,attr"`
			} `xml:"failure"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

// Parse reads a JUnit report.
func Parse(data []byte) (Result, error) {
	var r Result
	var j junit
	if err := xml.Unmarshal(data, &j); err != nil {
		return r, err
	}
	for _, s := range j.Suites {
		for _, c := range s.Cases {
			name := strings.TrimPrefix(c.Name, "[It] ")
			// Suite set-up and tear-down nodes are not specs.
			setup := strings.HasPrefix(c.Name, "[") && !strings.HasPrefix(c.Name, "[It]")
			switch {
			case c.Failure != nil || c.Status == "failed" || c.Status == "panicked" || c.Status == "interrupted":
				r.Failed++
				msg := c.Status
				if c.Failure != nil {
					msg = c.Failure.Message
				}
				r.Failures = append(r.Failures, name+": "+msg)
			case setup:
			case c.Skipped != nil || c.Status == "skipped" || c.Status == "pending":
				why := c.Status
				if c.Skipped != nil {
					why = strings.TrimPrefix(c.Skipped.Message, "skipped - ")
				}
				if why == "skipped" {
					r.NotRun++ // no reason of its own: filtered out
					continue
				}
				r.Skipped = append(r.Skipped, name+": "+why)
			default:
				r.Passed++
			}
		}
	}
	sort.Strings(r.Skipped)
	return r, nil
}
