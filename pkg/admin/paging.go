package admin

import (
	"sort"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rwxnfs/rwxnfs/pkg/exports"
)

const defaultPage = 1000

// page picks, from items sorted by id, at most max (0: defaultPage) of
// those after the id token, and the token of the next page ("" at the
// end). The token is the last id returned rather than an offset, so
// pages stay right while items come and go.
func page[T any](items []T, id func(T) string, token string, max int32) ([]T, string, error) {
	if max < 0 {
		return nil, "", invalid("max_entries must not be negative")
	}
	if max == 0 {
		max = defaultPage
	}
	lo := 0
	if token != "" {
		if exports.ValidateID(token) != nil {
			return nil, "", status.Errorf(codes.Aborted, "invalid starting_token %q", token)
		}
		lo = sort.Search(len(items), func(i int) bool { return id(items[i]) >= token })
		if lo < len(items) && id(items[lo]) == token {
			lo++
		}
	}
	hi := min(len(items), lo+int(max))
	next := ""
	if hi < len(items) {
		next = id(items[hi-1])
	}
	return items[lo:hi], next, nil
}

func volumeID(v *exports.Volume) string     { return v.ID }
func snapshotID(s *exports.Snapshot) string { return s.ID }
