// Package apivalidate checks real HTTP traffic against the gateway's
// OpenAPI document (openapi/openapi.yaml) in tests.
//
// Wrap the transport of any client a test uses:
//
//	client.Transport = apivalidate.Transport(t, client.Transport)
//	// or: client = apivalidate.Client(t, client)
//
// Every exchange through it is checked, and each mismatch is reported with
// t.Errorf (the test goes on; the caller gets the response unchanged):
//
//   - the route (method and path; any host and port) must be in the
//     document: "route not in the OpenAPI document". Two answers of
//     undocumented routes are accepted, because the document states them for
//     every path: 404 for a path the document does not have (validated
//     against components/responses/NotFound when it is JSON), and 405 for a
//     method a documented path does not have (validated against
//     components/responses/MethodNotAllowed when it is JSON, else
//     ReadOnlyMethodNotAllowed, and its Allow header must list exactly the
//     documented methods);
//   - the response must be documented for the operation: status, headers,
//     content type and body, for every status, errors included. Response
//     schemas are closed (additionalProperties: false), so an undocumented
//     field fails;
//   - the request (parameters and body) is validated when the answer is 2xx:
//     the server accepted it, so the document must describe it. Requests
//     answered with 4xx or 5xx are not validated, since tests send broken
//     requests on purpose; their answers still are. A test that deliberately
//     sends an undocumented request the server accepts (an unknown field, a
//     legacy spelling) marks it with SkipRequestValidation.
//
// Authentication is checked only in form: an operation secured by the
// bearer scheme must have been called with an `Authorization: Bearer …`
// header when the server accepted it. Whether the token was valid is for
// the tests of each handler.
//
// The transport reads each response body completely before returning it
// (restored, so the caller reads the same bytes), so it does not suit
// streaming answers.
package apivalidate

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/msgbroker/caddy-msgbroker/internal/openapi"
)

func init() {
	// Content types of the CRL route that kin-openapi does not know.
	openapi3filter.RegisterBodyDecoder("application/pkix-crl", openapi3filter.FileBodyDecoder)
	openapi3filter.RegisterBodyDecoder("application/x-pem-file", openapi3filter.PlainBodyDecoder)
}

// Document loads and validates the OpenAPI document, failing the test if
// it is invalid. Each call returns a new copy the caller may modify.
func Document(t testing.TB) *openapi3.T {
	t.Helper()
	doc, err := openapi.Load()
	if err != nil {
		t.Fatalf("apivalidate: %v", err)
	}
	return doc
}

// Transport returns a RoundTripper that sends requests through base
// (http.DefaultTransport when nil) and reports with t.Errorf every exchange
// that does not match the document.
func Transport(t testing.TB, base http.RoundTripper) http.RoundTripper {
	t.Helper()
	if base == nil {
		base = http.DefaultTransport
	}
	v, err := shared()
	if err != nil {
		t.Fatalf("apivalidate: %v", err)
	}
	return &transport{t: t, base: base, v: v}
}

// Client returns a copy of c (http.DefaultClient when nil) whose transport
// validates every exchange.
func Client(t testing.TB, c *http.Client) *http.Client {
	t.Helper()
	if c == nil {
		c = http.DefaultClient
	}
	copied := *c
	copied.Transport = Transport(t, c.Transport)
	return &copied
}

type skipRequestKey struct{}

// SkipRequestValidation returns req marked so that the transport does not
// validate it (its response is still validated). Use it for requests that
// are deliberately outside the document but accepted by the server.
func SkipRequestValidation(req *http.Request) *http.Request {
	return req.WithContext(context.WithValue(req.Context(), skipRequestKey{}, true))
}

func requestValidationSkipped(req *http.Request) bool {
	skip, _ := req.Context().Value(skipRequestKey{}).(bool)
	return skip
}

// validator is the document prepared for routing, shared by all transports
// of a test binary (it is only read).
type validator struct {
	doc    *openapi3.T
	router routers.Router
}

var shared = sync.OnceValues(func() (*validator, error) {
	doc, err := openapi.Load()
	if err != nil {
		return nil, err
	}
	return newValidator(doc)
})

// newValidator prepares doc for routing on any host: its servers are
// removed, so only method and path select an operation.
func newValidator(doc *openapi3.T) (*validator, error) {
	doc.Servers = nil
	for _, item := range doc.Paths.Map() {
		item.Servers = nil
		for _, op := range item.Operations() {
			op.Servers = nil
		}
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, err
	}
	return &validator{doc: doc, router: router}, nil
}

// uuidPattern is the form broker.ParseMessageID accepts. OpenAPI leaves
// the uuid format to the implementation; kin-openapi does not check it
// unless told how.
var uuidPattern = `^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`

var options = &openapi3filter.Options{
	AuthenticationFunc:    authenticated,
	IncludeResponseStatus: true,
	MultiError:            true,
	SkipSettingDefaults:   true,
	SchemaValidationOptions: []openapi3.SchemaValidationOption{
		openapi3.WithStringFormatValidator("uuid", openapi3.NewRegexpFormatValidator(uuidPattern)),
	},
}

// authenticated checks that a request to a bearer-secured operation
// carried a bearer token. Other schemes are not HTTP-visible (client
// certificates) and pass.
func authenticated(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	scheme := in.SecurityScheme
	if scheme == nil || scheme.Type != "http" || !strings.EqualFold(scheme.Scheme, "bearer") {
		return nil
	}
	kind, token, _ := strings.Cut(in.RequestValidationInput.Request.Header.Get("Authorization"), " ")
	if !strings.EqualFold(kind, "Bearer") || strings.TrimSpace(token) == "" {
		return fmt.Errorf("the operation needs an Authorization: Bearer header (security scheme %s)", in.SecuritySchemeName)
	}
	return nil
}

type transport struct {
	t    testing.TB
	base http.RoundTripper
	v    *validator
}

func (tr *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil && req.Body != http.NoBody {
		var err error
		reqBody, err = io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		// RoundTrip must not modify the caller's request: send a copy.
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(reqBody)), nil }
	}
	resp, err := tr.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	respBody, readErr := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(io.MultiReader(bytes.NewReader(respBody), errReader{readErr}))
	if readErr != nil {
		tr.t.Logf("apivalidate: %s %s: not validated, reading the answer failed: %v", req.Method, req.URL.Path, readErr)
		return resp, nil
	}
	for _, problem := range tr.v.check(req, reqBody, resp, respBody) {
		tr.t.Errorf("apivalidate: %s %s → %d: %s\n\tanswer: %s", req.Method, req.URL.RequestURI(), resp.StatusCode,
			problem, excerpt(respBody))
	}
	return resp, nil
}

// errReader returns err (io.EOF when nil) after the restored body.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) {
	if e.err == nil {
		return 0, io.EOF
	}
	return 0, e.err
}

func excerpt(body []byte) string {
	const limit = 300
	s := strings.TrimSpace(string(body))
	if len(s) > limit {
		s = s[:limit] + "…"
	}
	if s == "" {
		return "(empty)"
	}
	return s
}

// check validates one exchange and returns the problems found.
func (v *validator) check(req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) []string {
	route, pathParams, err := v.router.FindRoute(withBody(req, nil))
	if err != nil {
		return v.checkUndocumented(req, resp, respBody)
	}
	var problems []string
	reqInput := &openapi3filter.RequestValidationInput{
		Request:    withBody(req, reqBody),
		PathParams: pathParams,
		Route:      route,
		Options:    options,
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 && !requestValidationSkipped(req) {
		if err := openapi3filter.ValidateRequest(req.Context(), reqInput); err != nil {
			problems = append(problems, "request does not match the OpenAPI document: "+err.Error())
		}
	}
	if p := validateResponse(req, reqInput, resp, respBody); p != "" {
		problems = append(problems, p)
	}
	return problems
}

func validateResponse(req *http.Request, reqInput *openapi3filter.RequestValidationInput, resp *http.Response, respBody []byte) string {
	// ValidateResponse accepts any answer to HEAD; its status must still be
	// documented.
	if req.Method == http.MethodHead {
		if reqInput.Route.Operation.Responses.Status(resp.StatusCode) == nil &&
			reqInput.Route.Operation.Responses.Default() == nil {
			return fmt.Sprintf("response status %d is not documented for HEAD %s", resp.StatusCode, reqInput.Route.Path)
		}
		return ""
	}
	respInput := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: reqInput,
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Options:                options,
	}
	respInput.SetBodyBytes(respBody)
	if err := openapi3filter.ValidateResponse(req.Context(), respInput); err != nil {
		return "response does not match the OpenAPI document: " + err.Error()
	}
	return ""
}

// checkUndocumented handles a request the router found no operation for.
func (v *validator) checkUndocumented(req *http.Request, resp *http.Response, respBody []byte) []string {
	documented := v.documentedMethods(req)
	switch {
	case len(documented) > 0 && resp.StatusCode == http.StatusMethodNotAllowed:
		var problems []string
		if allow := allowHeader(resp.Header); !slices.Equal(allow, documented) {
			problems = append(problems, fmt.Sprintf("Allow lists %v, the document has %v for this path", allow, documented))
		}
		shared := "MethodNotAllowed"
		if !isJSON(resp.Header) {
			shared = "ReadOnlyMethodNotAllowed"
		}
		if p := v.validateShared(req, shared, resp, respBody); p != "" {
			problems = append(problems, p)
		}
		return problems
	case len(documented) > 0:
		return []string{fmt.Sprintf("method not in the OpenAPI document (the path has %v), yet answered %d",
			documented, resp.StatusCode)}
	case resp.StatusCode == http.StatusNotFound:
		if !isJSON(resp.Header) {
			return nil
		}
		if p := v.validateShared(req, "NotFound", resp, respBody); p != "" {
			return []string{p}
		}
		return nil
	default:
		return []string{"route not in the OpenAPI document"}
	}
}

var methods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodOptions, http.MethodTrace,
}

// documentedMethods returns, sorted, the methods the document has for the
// request's path.
func (v *validator) documentedMethods(req *http.Request) []string {
	var found []string
	for _, m := range methods {
		probe := withBody(req, nil)
		probe.Method = m
		if _, _, err := v.router.FindRoute(probe); err == nil {
			found = append(found, m)
		}
	}
	sort.Strings(found)
	return found
}

// validateShared validates an answer against components/responses/<name>,
// which the document states for every path.
func (v *validator) validateShared(req *http.Request, name string, resp *http.Response, respBody []byte) string {
	shared := v.doc.Components.Responses[name]
	if shared == nil {
		return fmt.Sprintf("components/responses/%s is missing from the OpenAPI document", name)
	}
	responses := openapi3.NewResponses(openapi3.WithStatus(resp.StatusCode, shared))
	route := &routers.Route{
		Spec:      v.doc,
		Path:      req.URL.Path,
		PathItem:  &openapi3.PathItem{},
		Method:    req.Method,
		Operation: &openapi3.Operation{Responses: responses},
	}
	reqInput := &openapi3filter.RequestValidationInput{Request: withBody(req, nil), Route: route, Options: options}
	return validateResponse(req, reqInput, resp, respBody)
}

var listSeparator = regexp.MustCompile(`\s*,\s*`)

// allowHeader returns the methods of the Allow header, sorted.
func allowHeader(h http.Header) []string {
	var allow []string
	for _, value := range h.Values("Allow") {
		for _, m := range listSeparator.Split(strings.TrimSpace(value), -1) {
			if m != "" {
				allow = append(allow, strings.ToUpper(m))
			}
		}
	}
	sort.Strings(allow)
	return allow
}

func isJSON(h http.Header) bool {
	ct, _, _ := strings.Cut(h.Get("Content-Type"), ";")
	return strings.EqualFold(strings.TrimSpace(ct), "application/json")
}

// withBody returns a shallow copy of req reading body, for the validators
// (which consume it).
func withBody(req *http.Request, body []byte) *http.Request {
	c := req.Clone(req.Context())
	c.Body = io.NopCloser(bytes.NewReader(body))
	c.ContentLength = int64(len(body))
	return c
}
