package openapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

func load(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func TestDocumentIsValidOpenAPI31(t *testing.T) {
	doc := load(t)
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi = %q, want 3.1.0", doc.OpenAPI)
	}
}

// TestEveryRegisteredRouteIsDocumented lists the routes the handlers
// register (modules/health, modules/internalapi, modules/docs): each must be
// in the document with exactly these methods.
func TestEveryRegisteredRouteIsDocumented(t *testing.T) {
	routes := map[string][]string{
		"/health":                        {http.MethodGet, http.MethodHead},
		"/internal/messages/register":    {http.MethodPost},
		"/internal/messages/deliver":     {http.MethodPost},
		"/internal/messages/{id}/status": {http.MethodPut},
		"/openapi.json":                  {http.MethodGet, http.MethodHead},
		"/openapi.yaml":                  {http.MethodGet, http.MethodHead},
		"/docs":                          {http.MethodGet, http.MethodHead},
		"/redoc":                         {http.MethodGet, http.MethodHead},
		"/docs/assets/{asset}":           {http.MethodGet, http.MethodHead},
		"/portal":                        {http.MethodGet},
		"/portal/app":                    {http.MethodGet, http.MethodHead},
		"/portal/assets/{portalAsset}":   {http.MethodGet, http.MethodHead},
	}
	doc := load(t)
	for path, methods := range routes {
		item := doc.Paths.Value(path)
		if item == nil {
			t.Errorf("%s is not documented", path)
			continue
		}
		var documented []string
		for method := range item.Operations() {
			documented = append(documented, method)
		}
		sort.Strings(documented)
		want := slices.Clone(methods)
		sort.Strings(want)
		if !slices.Equal(documented, want) {
			t.Errorf("%s documents %v, the handler answers %v", path, documented, want)
		}
	}
}

// TestEveryOperationDeclaresSecurity makes a route without a security
// declaration fail: the internal API must require a client certificate of
// a given role, and a public route must say it is public (security: []),
// so that neither is left to a top-level default.
func TestEveryOperationDeclaresSecurity(t *testing.T) {
	public := map[string]bool{
		"/health": true, "/crl": true, "/openapi.json": true, "/openapi.yaml": true,
		"/docs": true, "/redoc": true, "/docs/assets/{asset}": true, "/api": true,
		"/portal": true, "/portal/app": true, "/portal/assets/{portalAsset}": true,
	}
	doc := load(t)
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			where := method + " " + path
			if op.Security == nil {
				t.Errorf("%s declares no security (security: [] for a public route)", where)
				continue
			}
			switch {
			case strings.HasPrefix(path, "/internal/"):
				checkMutualTLS(t, doc, where, *op.Security)
			case public[path] && len(*op.Security) > 0:
				t.Errorf("%s is public but requires %v", where, *op.Security)
			}
		}
	}
}

// checkMutualTLS requires every alternative of an internal operation's
// security to be a mutualTLS scheme naming the role the caller needs.
func checkMutualTLS(t *testing.T, doc *openapi3.T, where string, security openapi3.SecurityRequirements) {
	t.Helper()
	if len(security) == 0 {
		t.Errorf("%s: internal operations require a client certificate", where)
	}
	for _, requirement := range security {
		if len(requirement) == 0 {
			t.Errorf("%s: an empty security requirement makes the client certificate optional", where)
		}
		for name, roles := range requirement {
			scheme := doc.Components.SecuritySchemes[name]
			if scheme == nil || scheme.Value.Type != "mutualTLS" {
				t.Errorf("%s: security scheme %q is not mutualTLS", where, name)
			}
			if len(roles) == 0 {
				t.Errorf("%s: security scheme %q names no role", where, name)
			}
		}
	}
}

// TestOperationsAreComplete checks the conventions other routes follow:
// tags, operation ids, JSON errors in the shared Error shape, closed
// response schemas.
func TestOperationsAreComplete(t *testing.T) {
	doc := load(t)
	ids := map[string]string{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			where := method + " " + path
			if len(op.Tags) == 0 {
				t.Errorf("%s has no tag", where)
			}
			if op.OperationID == "" {
				t.Errorf("%s has no operationId", where)
			} else if other, dup := ids[op.OperationID]; dup {
				t.Errorf("%s and %s share operationId %s", where, other, op.OperationID)
			}
			ids[op.OperationID] = where
			for status, resp := range op.Responses.Map() {
				media := resp.Value.Content.Get("application/json")
				if media == nil || media.Schema == nil {
					continue
				}
				schema := media.Schema.Value
				// Three answers are exempt: the 503 of /health is a health
				// report, not an error; this document is open by nature; and
				// the device channel answers errors in the original device
				// server's shape, which existing devices parse.
				if refersTo(media.Schema, "#/components/schemas/HealthReport") && status == "503" ||
					refersTo(media.Schema, "#/components/schemas/OpenAPIDocument") ||
					refersTo(media.Schema, "#/components/schemas/DeviceAnswer") {
					continue
				}
				if strings.HasPrefix(status, "4") || strings.HasPrefix(status, "5") {
					if !refersTo(media.Schema, "#/components/schemas/Error") {
						t.Errorf("%s %s: error answers must use components/schemas/Error", where, status)
					}
					continue
				}
				if !closed(schema) {
					t.Errorf("%s %s: the response schema must have additionalProperties: false", where, status)
				}
			}
		}
	}
}

func refersTo(ref *openapi3.SchemaRef, target string) bool {
	if ref.Ref == target {
		return true
	}
	for _, sub := range ref.Value.AllOf {
		if refersTo(sub, target) {
			return true
		}
	}
	return false
}

// closed reports whether a schema (or one of its allOf parts) forbids
// undocumented properties.
func closed(s *openapi3.Schema) bool {
	if s.AdditionalProperties.Has != nil && !*s.AdditionalProperties.Has {
		return true
	}
	for _, sub := range s.AllOf {
		if closed(sub.Value) {
			return true
		}
	}
	return false
}

// TestErrorCodesAreDocumented finds every error code the handlers and the
// broker can produce (apperr.New/Wrap calls, the
// certificate codes, the shared helpers) in the document.
func TestErrorCodesAreDocumented(t *testing.T) {
	codes := []string{
		// httpapi helpers and the internal API handler
		"internal_error", "service_unavailable", "not_found", "method_not_allowed",
		"client_certificate_required", "wrong_role", "certificate_unknown", "certificate_revoked",
		"certificate_expired", "certificate_mismatch", "request_too_large", "unreadable_body",
		"unsupported_media_type",
		// strictjson
		"invalid_json", "invalid_utf8", "lone_surrogate", "duplicate_key", "unknown_field",
		"control_character", "invalid_field_type",
		// broker/messages.go
		"invalid_message_id", "missing_sender_number", "invalid_sender_number", "missing_message_body",
		"message_body_too_long", "invalid_metadata", "keys_unavailable",
		"message_id_conflict", "missing_status", "invalid_status", "error_too_long", "invalid_reason",
		"missing_message_id", "message_not_found", "illegal_transition", "concurrent_update",
	}
	enums := map[string]bool{}
	collectCodeEnums(load(t), enums)
	for _, code := range codes {
		if !enums[code] {
			t.Errorf("error code %s is not in any documented error response", code)
		}
	}
}

func collectCodeEnums(doc *openapi3.T, into map[string]bool) {
	var walk func(s *openapi3.SchemaRef)
	walk = func(s *openapi3.SchemaRef) {
		if s == nil || s.Value == nil {
			return
		}
		for _, sub := range s.Value.AllOf {
			walk(sub)
		}
		if e := s.Value.Properties["error"]; e != nil && e.Value != nil {
			if c := e.Value.Properties["code"]; c != nil && c.Value != nil {
				for _, v := range c.Value.Enum {
					into[v.(string)] = true
				}
			}
		}
	}
	visit := func(r *openapi3.ResponseRef) {
		if m := r.Value.Content.Get("application/json"); m != nil {
			walk(m.Schema)
		}
	}
	for _, r := range doc.Components.Responses {
		visit(r)
	}
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			for _, r := range op.Responses.Map() {
				visit(r)
			}
		}
	}
}

func TestJSONIsTheYAMLInOrder(t *testing.T) {
	out := JSON()
	var fromJSON map[string]any
	if err := json.Unmarshal(out, &fromJSON); err != nil {
		t.Fatalf("JSON() is not JSON: %v", err)
	}
	loader := openapi3.NewLoader()
	fromJSONDoc, err := loader.LoadFromData(out)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(fromJSONDoc)
	b, _ := json.Marshal(load(t))
	if !bytes.Equal(a, b) {
		t.Error("JSON() and YAML() load to different documents")
	}
	// Paths keep the order of the YAML.
	re := regexp.MustCompile(`(?m)^    "(/[^"]*)": \{`)
	var order []string
	for _, m := range re.FindAllSubmatch(out, -1) {
		order = append(order, string(m[1]))
	}
	if len(order) < 3 || order[0] != "/health" || order[1] != "/internal/messages/register" {
		t.Errorf("paths in JSON() are in order %v, want the YAML's", order)
	}
	// Callers get copies.
	JSON()[0] = 'x'
	YAML()[0] = 'x'
	if JSON()[0] != '{' || YAML()[0] != document[0] {
		t.Error("JSON() or YAML() returned shared memory")
	}
}
