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
// gets a generic 500 while the caller keeps the cause for its log.
func TestUnexpectedErrorIsA500ThatHidesItsCause(t *testing.T) {
	cause := errors.New(`dial tcp: user broker:s3cret@tcp(db.internal:3306)/msgbroker: SELECT * FROM messages`)
	for name, err := range map[string]error{
		"plain":                  cause,
		"wrapped":                fmt.Errorf("registering message: %w", cause),
		"domain error, Internal": apperr.Wrap(cause, apperr.Internal, "secret_code", "secret message s3cret"),
	} {
		t.Run(name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			rendered := WriteError(rec, err)
			body := rec.Body.String()
			if rec.Code != http.StatusInternalServerError || rendered.Status != http.StatusInternalServerError {
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
			if !errors.Is(rendered, cause) {
				t.Fatal("the rendered error lost its cause, which the caller logs")
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Fatalf("Content-Type = %q", ct)
			}
		})
	}
}
