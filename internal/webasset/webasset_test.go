package webasset_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/msgbroker/caddy-msgbroker/internal/webasset"
)

func TestETagMatchesTheWeakComparison(t *testing.T) {
	const etag = `"abc"`
	for header, want := range map[string]bool{
		`"abc"`:          true,
		`W/"abc"`:        true,
		`"x", "abc"`:     true,
		` "x" ,W/"abc" `: true,
		`*`:              true,
		``:               false,
		`"abcd"`:         false,
		`abc`:            false,
		`"x", "y"`:       false,
		`W/"x"`:          false,
	} {
		if got := webasset.ETagMatches(header, etag); got != want {
			t.Errorf("If-None-Match %q: %v, want %v", header, got, want)
		}
	}
}

func TestServeAnswersGetHeadAndRevalidation(t *testing.T) {
	res := webasset.New("text/plain; charset=utf-8", []byte("hello"))
	if len(res.ETag) != 34 || res.ETag == webasset.New("text/plain", []byte("hello!")).ETag {
		t.Fatalf("ETag %s: want 32 hex digits in quotes, different for different bodies", res.ETag)
	}
	for _, c := range []struct {
		method, ifNoneMatch string
		status              int
		body                string
	}{
		{"GET", "", 200, "hello"},
		{"HEAD", "", 200, ""},
		{"GET", res.ETag, 304, ""},
		{"GET", `"other"`, 200, "hello"},
	} {
		req := httptest.NewRequest(c.method, "/x", nil)
		if c.ifNoneMatch != "" {
			req.Header.Set("If-None-Match", c.ifNoneMatch)
		}
		rec := httptest.NewRecorder()
		if err := res.Serve(rec, req); err != nil {
			t.Fatalf("%s: %v", c.method, err)
		}
		if rec.Code != c.status || rec.Body.String() != c.body || rec.Header().Get("ETag") != res.ETag || rec.Header().Get("Cache-Control") != "no-cache" {
			t.Errorf("%s If-None-Match %q = %d %q %v", c.method, c.ifNoneMatch, rec.Code, rec.Body, rec.Header())
		}
		if c.status == 200 && (rec.Header().Get("Content-Length") != "5" || rec.Header().Get("Content-Type") != "text/plain; charset=utf-8") {
			t.Errorf("%s: headers %v", c.method, rec.Header())
		}
	}
	rec := httptest.NewRecorder()
	if err := res.Serve(rec, httptest.NewRequest("POST", "/x", nil)); err == nil || rec.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %v, Allow %q", err, rec.Header().Get("Allow"))
	}
	h := http.Header{}
	webasset.SetPageHeaders(h, "default-src 'none'")
	if h.Get("Content-Security-Policy") != "default-src 'none'" || h.Get("X-Content-Type-Options") != "nosniff" ||
		h.Get("X-Frame-Options") != "DENY" || h.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("page headers %v", h)
	}
}
