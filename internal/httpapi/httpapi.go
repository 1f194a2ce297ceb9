// Package httpapi holds what every broker handler shares on the HTTP side:
// the JSON error shape and the one mapping from errors to HTTP answers.
//
// Every error answer is
//
//	{"error": {"code": "invalid_number", "message": "sender_number must start with +"}}
//
// with the matching 4xx or 5xx status. Handlers return *Error values (or
// wrap them); WriteError renders anything else as a 500 without leaking its
// text, because internal errors may carry DSNs or SQL.
package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/storage"
)

// Error is an error with an HTTP status and a stable, machine-readable code.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	// Err is the underlying cause; it is logged, never sent.
	Err error `json:"-"`
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an *Error with a formatted message.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Internal wraps an unexpected error: the client sees a generic message.
func Internal(err error) *Error {
	return &Error{Status: http.StatusInternalServerError, Code: "internal_error",
		Message: "the server could not complete the request", Err: err}
}

// Unavailable wraps an error from a dependency that is down.
func Unavailable(err error) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Code: "service_unavailable",
		Message: "a backing service is unavailable; retry later", Err: err}
}

type errorBody struct {
	Error *Error `json:"error"`
}

// statusOf maps a domain error kind to its HTTP status.
var statusOf = map[apperr.Kind]int{
	apperr.Invalid:         http.StatusBadRequest,
	apperr.TooLarge:        http.StatusRequestEntityTooLarge,
	apperr.Unauthenticated: http.StatusUnauthorized,
	apperr.Forbidden:       http.StatusForbidden,
	apperr.NotFound:        http.StatusNotFound,
	apperr.Conflict:        http.StatusConflict,
	apperr.Unavailable:     http.StatusServiceUnavailable,
	apperr.TooManyRequests: http.StatusTooManyRequests,
}

// AsError returns err as an *Error: HTTP errors as they are, domain errors
// with the status of their kind, anything else as an internal error.
func AsError(err error) *Error {
	var apiErr *Error
	if errors.As(err, &apiErr) {
		return apiErr
	}
	if domainErr, ok := apperr.As(err); ok {
		if status, known := statusOf[domainErr.Kind]; known {
			return &Error{Status: status, Code: domainErr.Code, Message: domainErr.Message, Err: domainErr}
		}
	}
	if storage.IsUnavailable(err) {
		return Unavailable(err)
	}
	return Internal(err)
}

// WriteError writes err as the JSON error answer and returns the *Error it
// rendered, so the caller can log the cause.
func WriteError(w http.ResponseWriter, err error) *Error {
	apiErr := AsError(err)
	if apiErr.Status == http.StatusMethodNotAllowed && w.Header().Get("Allow") == "" {
		w.Header().Set("Allow", http.MethodGet)
	}
	if apiErr.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	WriteJSON(w, apiErr.Status, errorBody{Error: apiErr})
	return apiErr
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

// AllowReads answers 405 with `Allow: GET, HEAD` and returns false unless
// r is a GET or HEAD, for the read-only routes.
func AllowReads(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	WriteError(w, Errorf(http.StatusMethodNotAllowed, "method_not_allowed", "%s is not allowed here; use GET", r.Method))
	return false
}
