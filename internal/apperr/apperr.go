// Package apperr is the broker's one error type: each error has a kind
// (what went wrong, for the caller to map to an HTTP status or an exit
// code), a stable machine-readable code, a message safe to show to the
// client and, for logs only, a cause. Domain services, storage and the
// handlers all speak it; internal/httpapi maps it to HTTP in one place. It
// knows nothing of HTTP.
package apperr

import (
	"errors"
	"fmt"
)

// Kind classifies an error for the transport layer.
type Kind int

// Kinds of domain errors.
const (
	Internal Kind = iota
	Invalid
	TooLarge
	Unauthenticated
	Forbidden
	NotFound
	Conflict
	Unavailable
	TooManyRequests
	MethodNotAllowed
	UnsupportedMediaType
)

// Error is the broker's error.
type Error struct {
	Kind    Kind
	Code    string
	Message string
	// Err is the cause, for logs only.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// New builds an *Error with a formatted message.
func New(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap builds an *Error that keeps err as its cause.
func Wrap(err error, kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...), Err: err}
}

// As returns err as an *Error when it is (or wraps) one.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// KindOf returns the kind of err, Internal when it is not an *Error.
func KindOf(err error) Kind {
	if e, ok := As(err); ok {
		return e.Kind
	}
	return Internal
}
