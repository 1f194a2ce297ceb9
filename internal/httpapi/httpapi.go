// Package httpapi holds what every broker JSON API shares on the HTTP side:
// the one mapping from apperr kinds to HTTP statuses and the JSON error
// shape. Every error answer is
//
//	{"error": {"code": "invalid_sender_number", "message": "sender_number must start with +"}}
//
// with the matching 4xx or 5xx status. Anything that is not an *apperr.Error
// is rendered as a 500 without its text, because internal errors may carry
// DSNs or SQL; so is an *apperr.Error of kind Internal.
package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
)

// statusOf maps an error kind to its HTTP status.
var statusOf = map[apperr.Kind]int{
	apperr.Invalid:              http.StatusBadRequest,
	apperr.TooLarge:             http.StatusRequestEntityTooLarge,
	apperr.Unauthenticated:      http.StatusUnauthorized,
	apperr.Forbidden:            http.StatusForbidden,
	apperr.NotFound:             http.StatusNotFound,
	apperr.Conflict:             http.StatusConflict,
	apperr.Unavailable:          http.StatusServiceUnavailable,
	apperr.TooManyRequests:      http.StatusTooManyRequests,
	apperr.MethodNotAllowed:     http.StatusMethodNotAllowed,
	apperr.UnsupportedMediaType: http.StatusUnsupportedMediaType,
}

// internalError is what a client sees of an unexpected error.
var internalError = apperr.Error{Kind: apperr.Internal, Code: "internal_error",
	Message: "the server could not complete the request"}

// render returns the HTTP status and the client-safe error for err.
func render(err error) (int, *apperr.Error) {
	if e, ok := apperr.As(err); ok {
		if status, known := statusOf[e.Kind]; known {
			return status, &apperr.Error{Kind: e.Kind, Code: e.Code, Message: e.Message}
		}
	}
	shown := internalError
	return http.StatusInternalServerError, &shown
}

type errorBody struct {
	Error errorFields `json:"error"`
}

type errorFields struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// WriteError writes err as the JSON error answer and returns its status,
// so the caller can log the cause of a 5xx.
func WriteError(w http.ResponseWriter, err error) int {
	status, shown := render(err)
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	WriteJSON(w, status, errorBody{Error: errorFields{Code: shown.Code, Message: shown.Message}})
	return status
}

// WriteJSON writes v as a JSON answer with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(`{"error":{"code":"internal_error","message":"the server could not encode the answer"}}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// Unavailable wraps the error of a dependency that is down (503, retry).
func Unavailable(err error) *apperr.Error {
	return apperr.Wrap(err, apperr.Unavailable, "service_unavailable", "a backing service is unavailable; retry later")
}

// RequireRead returns nil for GET and HEAD. Any other method gets a 405
// with `Allow: GET, HEAD` as a Caddy handler error, not a JSON answer: the
// read-only routes (health, CRL, docs) are not JSON APIs, and an
// operator's handle_errors decides what the body says.
func RequireRead(w http.ResponseWriter, r *http.Request) error {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return nil
	}
	w.Header().Set("Allow", "GET, HEAD")
	return caddyhttp.Error(http.StatusMethodNotAllowed, fmt.Errorf("%s is not allowed here; use GET", r.Method))
}
