package adminapi

import (
	"net/http"
	"strings"
)

// route is one endpoint. action is the audit action of a mutating route
// ("" for reads); it names the refusals the service never saw.
type route struct {
	method  string
	pattern string
	name    string
	action  string
	serve   func(h *Handler, w http.ResponseWriter, r *http.Request, c *call) error
}

// routes is the admin API, one line per endpoint. A pattern segment
// "{id}" matches one path segment. Every route here must be in
// internal/openapi/openapi.yaml; the authorization matrix test
// (integration/authz_matrix_test.go) fails for a route it has no row for.
var routes = []route{
	{http.MethodPost, "/admin/certificates/generate", "certificate_generate", "certificate.issue", (*Handler).generate},
	{http.MethodPost, "/admin/certificates/revoke", "certificate_revoke", "certificate.revoke", (*Handler).revoke},
	{http.MethodGet, "/admin/certificates", "certificates", "", (*Handler).certificates},
	{http.MethodGet, "/admin/crl", "crl", "", (*Handler).crl},
	{http.MethodPost, "/admin/users", "user_create", "user.create", (*Handler).createUser},
	{http.MethodGet, "/admin/users", "users", "", (*Handler).users},
	{http.MethodGet, "/admin/users/{id}", "user", "", (*Handler).user},
	{http.MethodPatch, "/admin/users/{id}", "user_update", "user.update", (*Handler).updateUser},
	{http.MethodDelete, "/admin/users/{id}", "user_delete", "user.delete", (*Handler).deleteUser},
	{http.MethodGet, "/admin/stats", "stats", "", (*Handler).stats},
	{http.MethodGet, "/admin/audit", "audit", "", (*Handler).audit},
}

func isAdminPath(path string) bool {
	return strings.HasPrefix(path, Prefix) || path == strings.TrimSuffix(Prefix, "/")
}

// match finds the route of method and path and the value of its {id}.
// When the path exists under other methods only, rt is nil and allowed
// lists them.
func match(method, path string) (rt *route, param string, allowed []string) {
	for i := range routes {
		p, ok := matchPattern(routes[i].pattern, path)
		if !ok {
			continue
		}
		if routes[i].method == method {
			return &routes[i], p, nil
		}
		allowed = append(allowed, routes[i].method)
	}
	return nil, "", allowed
}

// matchPattern matches path against pattern segment by segment.
func matchPattern(pattern, path string) (param string, ok bool) {
	ps, xs := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(ps) != len(xs) {
		return "", false
	}
	for i, seg := range ps {
		switch {
		case seg == "{id}" && xs[i] != "":
			param = xs[i]
		case seg != xs[i]:
			return "", false
		}
	}
	return param, true
}

func joinMethods(ms []string) string { return strings.Join(ms, ", ") }
