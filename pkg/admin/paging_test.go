package admin

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Pages follow the last id returned, so an item removed or added
// between two pages neither repeats nor hides another.
func TestPage(t *testing.T) {
	ids := []string{"a", "c", "e", "g", "i"}
	self := func(s string) string { return s }
	for _, tc := range []struct {
		token      string
		max        int32
		want, next string
	}{
		{"", 2, "a,c", "c"},
		{"c", 2, "e,g", "g"},
		{"g", 2, "i", ""},
		{"d", 2, "e,g", "g"}, // "d" went away after it was returned
		{"i", 2, "", ""},
		{"z", 2, "", ""},
		{"", 0, "a,c,e,g,i", ""}, // default page size
		{"", 5, "a,c,e,g,i", ""},
	} {
		got, next, err := page(ids, self, tc.token, tc.max)
		if err != nil || strings.Join(got, ",") != tc.want || next != tc.next {
			t.Errorf("page(%q, %d) = %v %q %v, want %s %q", tc.token, tc.max, got, next, err, tc.want, tc.next)
		}
	}
	if _, _, err := page(ids, self, "", -1); status.Code(err) != codes.InvalidArgument {
		t.Errorf("negative max: %v", err)
	}
	if _, _, err := page(ids, self, "../x", 1); status.Code(err) != codes.Aborted {
		t.Errorf("bad token: %v", err)
	}
	many := make([]string, defaultPage+1)
	for i := range many {
		many[i] = fmt.Sprintf("v%05d", i)
	}
	if got, next, _ := page(many, self, "", 0); len(got) != defaultPage || next != many[defaultPage-1] {
		t.Errorf("default page: %d items, next %q", len(got), next)
	}
}
