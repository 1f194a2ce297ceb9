package adminapi

import (
	"slices"
	"strings"
	"testing"

	"github.com/msgbroker/caddy-msgbroker/internal/openapi"
)

// TestRoutesMatchTheOpenAPIDocument: every route of the table is
// documented, and every documented /admin/ operation is in the table.
func TestRoutesMatchTheOpenAPIDocument(t *testing.T) {
	doc, err := openapi.Load()
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for path, item := range doc.Paths.Map() {
		if !strings.HasPrefix(path, Prefix) {
			continue
		}
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	var served []string
	for _, rt := range routes {
		served = append(served, rt.method+" "+rt.pattern)
	}
	for _, r := range served {
		if !slices.Contains(documented, r) {
			t.Errorf("%s is served but not in internal/openapi/openapi.yaml", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(served, d) {
			t.Errorf("%s is documented but not in the route table", d)
		}
	}
}

func TestMatch(t *testing.T) {
	cases := []struct {
		method, path, name, param string
		allowed                   []string
	}{
		{"GET", "/admin/users/12", "user", "12", nil},
		{"PATCH", "/admin/users/12", "user_update", "12", nil},
		{"PUT", "/admin/users/12", "", "", []string{"GET", "PATCH", "DELETE"}},
		{"GET", "/admin/users/", "", "", nil},
		{"GET", "/admin/users/12/x", "", "", nil},
		{"POST", "/admin/users", "user_create", "", nil},
		{"DELETE", "/admin/certificates", "", "", []string{"GET"}},
		{"GET", "/admin/", "", "", nil},
	}
	for _, tc := range cases {
		rt, param, allowed := match(tc.method, tc.path)
		name := ""
		if rt != nil {
			name = rt.name
		}
		if name != tc.name || param != tc.param || !slices.Equal(allowed, tc.allowed) {
			t.Errorf("match(%s %s) = %q %q %v, want %q %q %v", tc.method, tc.path, name, param, allowed, tc.name, tc.param, tc.allowed)
		}
	}
}

func TestWantsCSVFollowsTheAcceptHeadersPreference(t *testing.T) {
	for _, tc := range []struct {
		accept []string
		want   bool
	}{
		{nil, false},
		{[]string{"text/csv"}, true},
		{[]string{"text/csv; charset=utf-8"}, true},
		{[]string{"application/json"}, false},
		{[]string{"*/*"}, false},
		{[]string{"application/json, text/csv;q=0.5"}, false},
		{[]string{"application/json;q=0.5, text/csv"}, true},
		{[]string{"application/json;q=0.5", "text/csv;q=0.9"}, true},
		{[]string{"text/csv;q=0"}, false},
		{[]string{"text/csv;q=0.5, application/json;q=0.5"}, false},
		{[]string{"text/csv;q=2"}, false},
		{[]string{"text/csv;q=abc"}, false},
		{[]string{"text/csv;q=0.001"}, true},
		{[]string{"text/csv;q=1, text/csv;q=0"}, true},
		{[]string{"text/csv;;;"}, false},
	} {
		if got := wantsCSV(tc.accept); got != tc.want {
			t.Errorf("wantsCSV(%q) = %v, want %v", tc.accept, got, tc.want)
		}
	}
}
