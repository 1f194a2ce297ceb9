package docs_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"go.yaml.in/yaml/v3"

	"github.com/msgbroker/caddy-msgbroker/internal/apivalidate"
	"github.com/msgbroker/caddy-msgbroker/internal/openapi"
	"github.com/msgbroker/caddy-msgbroker/internal/testcaddy"
	"github.com/msgbroker/caddy-msgbroker/modules/docs"
)

// startDocs runs a real Caddy with msgbroker_docs in front of a respond
// handler (the "next handler") and returns its base URL.
func startDocs(t *testing.T) string {
	t.Helper()
	port := testcaddy.FreePort(t)
	testcaddy.Start(t, fmt.Sprintf(`{
}

http://127.0.0.1:%d {
	msgbroker_docs
	respond "next handler" 200
}
`, port))
	return fmt.Sprintf("http://127.0.0.1:%d", port)
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, c *http.Client, method, url string, header http.Header) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, body}
}

func TestDocsRoutes(t *testing.T) {
	base := startDocs(t)
	// Every answer of the handler is checked against the document it serves.
	client := apivalidate.Client(t, &http.Client{Timeout: 10 * time.Second})

	routes := []struct {
		path        string
		contentType string
	}{
		{"/openapi.json", "application/json"},
		{"/openapi.yaml", "application/yaml; charset=utf-8"},
		{"/docs", "text/html; charset=utf-8"},
		{"/redoc", "text/html; charset=utf-8"},
		{"/docs/assets/swagger-ui-bundle.js", "text/javascript; charset=utf-8"},
		{"/docs/assets/swagger-init.js", "text/javascript; charset=utf-8"},
		{"/docs/assets/swagger-ui.css", "text/css; charset=utf-8"},
		{"/docs/assets/redoc.standalone.js", "text/javascript; charset=utf-8"},
		{"/docs/assets/swagger-ui.LICENSE", "text/plain; charset=utf-8"},
		{"/docs/assets/redoc.LICENSE", "text/plain; charset=utf-8"},
	}
	for _, r := range routes {
		t.Run(strings.TrimPrefix(r.path, "/"), func(t *testing.T) {
			got := do(t, client, http.MethodGet, base+r.path, nil)
			if got.status != http.StatusOK {
				t.Fatalf("GET %s = %d %s", r.path, got.status, got.body)
			}
			if ct := got.header.Get("Content-Type"); ct != r.contentType {
				t.Errorf("Content-Type = %q, want %q", ct, r.contentType)
			}
			checkSecurityHeaders(t, got.header)
			if len(got.body) == 0 || got.header.Get("Content-Length") != fmt.Sprint(len(got.body)) {
				t.Errorf("body of %d bytes, Content-Length %q", len(got.body), got.header.Get("Content-Length"))
			}
			etag := got.header.Get("ETag")
			if etag == "" {
				t.Fatal("no ETag")
			}

			head := do(t, client, http.MethodHead, base+r.path, nil)
			if head.status != http.StatusOK || len(head.body) != 0 || head.header.Get("ETag") != etag ||
				head.header.Get("Content-Length") != got.header.Get("Content-Length") {
				t.Errorf("HEAD = %d, %d bytes, ETag %q, Content-Length %q", head.status, len(head.body),
					head.header.Get("ETag"), head.header.Get("Content-Length"))
			}
			cached := do(t, client, http.MethodGet, base+r.path, http.Header{"If-None-Match": {`"other", ` + etag}})
			if cached.status != http.StatusNotModified || len(cached.body) != 0 {
				t.Errorf("GET with If-None-Match = %d, %d bytes; want 304, empty", cached.status, len(cached.body))
			}
		})
	}
}

func checkSecurityHeaders(t *testing.T, h http.Header) {
	t.Helper()
	if got := h.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("X-Content-Type-Options = %q", got)
	}
	csp := h.Get("Content-Security-Policy")
	if csp != docs.ContentSecurityPolicy {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
	// Nothing from another origin: every source is 'self', 'none', an inline
	// style, data: or blob:.
	for directive := range strings.SplitSeq(csp, ";") {
		fields := strings.Fields(directive)
		for _, source := range fields[1:] {
			switch source {
			case "'self'", "'none'", "data:", "blob:":
			case "'unsafe-inline'":
				if fields[0] != "style-src" {
					t.Errorf("CSP allows inline content in %s", fields[0])
				}
			default:
				t.Errorf("CSP source %s in %s", source, fields[0])
			}
		}
	}
}

// TestPagesUseEmbeddedAssets checks that each page references only assets
// the handler serves, byte for byte the files of assets/, and no other
// origin.
func TestPagesUseEmbeddedAssets(t *testing.T) {
	base := startDocs(t)
	client := apivalidate.Client(t, &http.Client{Timeout: 10 * time.Second})
	ref := regexp.MustCompile(`(?:src|href|spec-url|data-spec-url)="([^"]+)"`)
	want := map[string][]string{
		"/docs":  {"docs/assets/swagger-ui.css", "docs/assets/swagger-ui-bundle.js", "docs/assets/swagger-init.js", "openapi.json"},
		"/redoc": {"docs/assets/redoc.standalone.js", "openapi.json"},
	}
	for page, refs := range want {
		html := string(do(t, client, http.MethodGet, base+page, nil).body)
		var found []string
		for _, m := range ref.FindAllStringSubmatch(html, -1) {
			found = append(found, m[1])
		}
		for _, r := range refs {
			if !strings.Contains(html, `"`+r+`"`) {
				t.Errorf("%s does not reference %s (references %v)", page, r, found)
			}
		}
		for _, r := range found {
			if strings.Contains(r, "//") {
				t.Errorf("%s references another origin: %s", page, r)
			}
			// The references are relative to the page, at the root.
			got := do(t, client, http.MethodGet, base+"/"+r, nil)
			if got.status != http.StatusOK {
				t.Errorf("%s references %s, which answers %d", page, r, got.status)
				continue
			}
			if file, isAsset := strings.CutPrefix(r, "docs/assets/"); isAsset {
				onDisk, err := os.ReadFile("assets/" + file)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got.body, onDisk) {
					t.Errorf("%s is not the embedded assets/%s", r, file)
				}
			}
		}
	}
}

func TestServedDocumentIsValid(t *testing.T) {
	base := startDocs(t)
	client := apivalidate.Client(t, &http.Client{Timeout: 10 * time.Second})

	fromJSON := do(t, client, http.MethodGet, base+"/openapi.json", nil).body
	if !bytes.Equal(fromJSON, openapi.JSON()) {
		t.Error("/openapi.json is not openapi.JSON()")
	}
	if !json.Valid(fromJSON) {
		t.Fatal("/openapi.json is not JSON")
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(fromJSON)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Errorf("/openapi.json does not validate: %v", err)
	}
	if _, err := openapi.Load(); err != nil {
		t.Errorf("openapi.Load: %v", err)
	}

	fromYAML := do(t, client, http.MethodGet, base+"/openapi.yaml", nil).body
	if !bytes.Equal(fromYAML, openapi.YAML()) {
		t.Error("/openapi.yaml is not openapi.YAML()")
	}
	var parsed map[string]any
	if err := yaml.Unmarshal(fromYAML, &parsed); err != nil || parsed["openapi"] != "3.1.0" {
		t.Errorf("/openapi.yaml: %v, openapi = %v", err, parsed["openapi"])
	}
}

func TestOtherRequests(t *testing.T) {
	base := startDocs(t)
	validated := apivalidate.Client(t, &http.Client{Timeout: 10 * time.Second})
	plain := &http.Client{Timeout: 10 * time.Second}

	// Paths that are not the handler's go to the next handler.
	for _, path := range []string{"/", "/docsx", "/redoc/x", "/openapi", "/health"} {
		got := do(t, plain, http.MethodGet, base+path, nil)
		if got.status != http.StatusOK || string(got.body) != "next handler" {
			t.Errorf("GET %s = %d %q, want the next handler", path, got.status, got.body)
		}
	}

	// Unknown assets are a Caddy handler error, so handle_errors applies:
	// a 404 with no body of ours.
	got := do(t, validated, http.MethodGet, base+"/docs/assets/swagger-ui-bundle.js.map", nil)
	if got.status != http.StatusNotFound || len(got.body) != 0 {
		t.Errorf("unknown asset = %d %q, want 404 with Caddy's empty error body", got.status, got.body)
	}
	checkSecurityHeaders(t, got.header)

	// Other methods: 405 with Allow (checked against the document too), as
	// a handler error with Caddy's empty body.
	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		got := do(t, validated, method, base+"/docs", nil)
		if got.status != http.StatusMethodNotAllowed || got.header.Get("Allow") != "GET, HEAD" || len(got.body) != 0 {
			t.Errorf("%s /docs = %d, Allow %q, %s", method, got.status, got.header.Get("Allow"), got.body)
		}
	}
}

// The documentation's 404 and 405 are Caddy handler errors, so an
// operator's handle_errors decides their body.
func TestOperatorsErrorPagesApply(t *testing.T) {
	port := testcaddy.FreePort(t)
	testcaddy.Start(t, fmt.Sprintf(`{
}

http://127.0.0.1:%d {
	msgbroker_docs
	respond "next handler" 200
	handle_errors {
		respond "operator page {err.status_code}"
	}
}
`, port))
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	for _, c := range []struct{ method, path, want string }{
		{http.MethodGet, "/docs/assets/missing.js", "operator page 404"},
		{http.MethodDelete, "/docs", "operator page 405"},
	} {
		got := do(t, http.DefaultClient, c.method, base+c.path, nil)
		if string(got.body) != c.want {
			t.Errorf("%s %s = %d %q, want %q", c.method, c.path, got.status, got.body, c.want)
		}
	}
}

// Everything under /docs/ belongs to the documentation, even when the
// handler has its own `handle` block with no next handler: /docs/
// redirects to /docs and an unknown page is a 404, never an empty 200.
func TestPathsUnderDocsAreNeverAnEmpty200(t *testing.T) {
	port := testcaddy.FreePort(t)
	testcaddy.Start(t, fmt.Sprintf(`{
}

http://127.0.0.1:%d {
	@docs path /docs /docs/*
	handle @docs {
		msgbroker_docs
	}
}
`, port))
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	noRedirects := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if got := do(t, noRedirects, http.MethodGet, base+"/docs/", nil); got.status != http.StatusPermanentRedirect || got.header.Get("Location") != "/docs" {
		t.Errorf("/docs/ = %d Location %q, want 308 to /docs", got.status, got.header.Get("Location"))
	}
	for _, p := range []string{"/docs/foo", "/docs/assets/missing.js"} {
		if got := do(t, noRedirects, http.MethodGet, base+p, nil); got.status != http.StatusNotFound {
			t.Errorf("%s = %d %q, want 404", p, got.status, got.body)
		}
	}
}
