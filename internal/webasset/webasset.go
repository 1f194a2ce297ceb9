// Package webasset serves the pages and files embedded in the binary (the
// documentation pages, the web portal): prepared once, with an ETag, the
// revalidation of If-None-Match, and the security headers every page of
// ours carries.
package webasset

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"

	"github.com/msgbroker/caddy-msgbroker/internal/httpapi"
)

// Resource is one answer, prepared once.
type Resource struct {
	ContentType string
	Body        []byte
	ETag        string
}

// New prepares body as a resource of contentType.
func New(contentType string, body []byte) Resource {
	sum := sha256.Sum256(body)
	return Resource{ContentType: contentType, Body: body, ETag: `"` + hex.EncodeToString(sum[:16]) + `"`}
}

// SetPageHeaders sets what every answer of a page's path space carries,
// errors included: its Content-Security-Policy, no MIME sniffing, no
// framing, no referrer.
func SetPageHeaders(h http.Header, csp string) {
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
}

// Serve answers a GET or HEAD with res: 304 when the client holds the
// same version, the body otherwise; other methods get a 405 error for
// Caddy's error handling. Clients revalidate every time (no-cache), so a
// new binary's pages are seen at once.
func (res Resource) Serve(w http.ResponseWriter, r *http.Request) error {
	if err := httpapi.RequireRead(w, r); err != nil {
		return err
	}
	header := w.Header()
	header.Set("ETag", res.ETag)
	header.Set("Cache-Control", "no-cache")
	if ETagMatches(r.Header.Get("If-None-Match"), res.ETag) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	header.Set("Content-Type", res.ContentType)
	header.Set("Content-Length", strconv.Itoa(len(res.Body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(res.Body)
	}
	return nil
}

// ETagMatches implements the weak comparison of If-None-Match (RFC 9110
// 13.1.2) against a strong etag.
func ETagMatches(ifNoneMatch, etag string) bool {
	for candidate := range strings.SplitSeq(ifNoneMatch, ",") {
		candidate = strings.TrimPrefix(strings.TrimSpace(candidate), "W/")
		if candidate == "*" || candidate == etag {
			return true
		}
	}
	return false
}
