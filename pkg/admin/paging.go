package admin

import (
	"sort"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rwxnfs/rwxnfs/pkg/exports"
)

const defaultPage = 1000

// page picks the entries after token (exclusive, by id), at most max.
func page(ids []string, token string, max int32) (lo, hi int, next string, err error) {
	if max < 0 {
		return 0, 0, "", invalid("max_entries must not be negative")
	}
	if max == 0 {
		max = defaultPage
	}
	if token != "" {
		if exports.ValidateID(token) != nil {
			return 0, 0, "", status.Errorf(codes.Aborted, "invalid starting_token %q", token)
		}
		lo = sort.SearchStrings(ids, token)
		if lo < len(ids) && ids[lo] == token {
			lo++
		}
	}
	hi = min(len(ids), lo+int(max))
	if hi < len(ids) {
		next = ids[hi-1]
	}
	return lo, hi, next, nil
}
