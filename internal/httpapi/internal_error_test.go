package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
)

// TestUnexpectedErrorIsA500ThatHidesItsCause: an error that is neither an
// HTTP nor a domain error may carry SQL, DSNs or file paths; the client
// gets a generic 500 (the caller still has err, with its cause, to log).
func TestUnexpectedErrorIsA500ThatHidesItsCause(t *testing.T) {
	cause := errors.New(`dial tcp: user broker:s3cret@tcp(db.internal:3306)/msgbroker: SELECT * FROM messages`)
	for name, err := range map[string]error{
		"plain":                  cause,
		"wrapped":                fmt.Errorf("registering message: %w", cause),
		"domain error, Internal": apperr.Wrap(cause, apperr.Internal, "secret_code", "secret message s3cret"),
	} {
		t.Run(name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			status := WriteError(rec, err)
			body := rec.Body.String()
			if rec.Code != http.StatusInternalServerError || status != http.StatusInternalServerError {
				t.Fatalf("status = %d, want 500", rec.Code)
			}
			for _, leak := range []string{"s3cret", "db.internal", "SELECT", "secret_code", "registering"} {
				if strings.Contains(body, leak) {
					t.Fatalf("the answer %s leaks %q", body, leak)
				}
			}
			var answer struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil || answer.Error.Code != "internal_error" || answer.Error.Message == "" {
				t.Fatalf("answer = %s (%v)", body, err)
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Fatalf("Content-Type = %q", ct)
			}
		})
	}
}

// Each kind gets its status; a 503 says when to retry; the code and
// message reach the client as they are.
func TestKindsMapToTheirStatus(t *testing.T) {
	for kind, want := range map[apperr.Kind]int{
		apperr.Invalid: 400, apperr.Unauthenticated: 401, apperr.Forbidden: 403, apperr.NotFound: 404,
		apperr.MethodNotAllowed: 405, apperr.Conflict: 409, apperr.TooLarge: 413, apperr.UnsupportedMediaType: 415,
		apperr.TooManyRequests: 429, apperr.Unavailable: 503,
	} {
		rec := httptest.NewRecorder()
		err := fmt.Errorf("context: %w", apperr.Wrap(errors.New("cause"), kind, "some_code", "what happened"))
		if got := WriteError(rec, err); got != want || rec.Code != want {
			t.Errorf("kind %d = %d (recorded %d), want %d", kind, got, rec.Code, want)
		}
		if body := rec.Body.String(); body != `{"error":{"code":"some_code","message":"what happened"}}`+"\n" {
			t.Errorf("kind %d body = %s", kind, body)
		}
		if retry := rec.Header().Get("Retry-After"); (want == 503) != (retry == "1") {
			t.Errorf("kind %d Retry-After = %q", kind, retry)
		}
	}
}
