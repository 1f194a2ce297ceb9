package apperr

import (
	"errors"
	"fmt"
	"testing"
)

func TestNewFormatsItsMessageAndHasNoCause(t *testing.T) {
	e := New(NotFound, "message_not_found", "message %s not found", "m-1")
	if e.Kind != NotFound || e.Code != "message_not_found" || e.Message != "message m-1 not found" || e.Err != nil {
		t.Fatalf("New = %+v", e)
	}
	if got := e.Error(); got != "message_not_found: message m-1 not found" {
		t.Fatalf("Error() = %q", got)
	}
	if errors.Unwrap(e) != nil {
		t.Fatal("New has a cause")
	}
}

// Wrap keeps the cause for logs (Error, errors.Is) while the message stays
// the client's.
func TestWrapKeepsTheCauseOutOfTheMessage(t *testing.T) {
	cause := errors.New("dial tcp: connection refused")
	e := Wrap(cause, Unavailable, "service_unavailable", "the database is unavailable")
	if e.Message != "the database is unavailable" || !errors.Is(e, cause) || errors.Unwrap(e) != cause {
		t.Fatalf("Wrap = %+v", e)
	}
	if got := e.Error(); got != "service_unavailable: the database is unavailable: dial tcp: connection refused" {
		t.Fatalf("Error() = %q", got)
	}
}

// As and KindOf find an *Error through wrapping; anything else is Internal.
func TestKindOfLooksThroughWrapping(t *testing.T) {
	inner := New(Conflict, "illegal_transition", "no")
	wrapped := fmt.Errorf("updating: %w", inner)
	if e, ok := As(wrapped); !ok || e != inner {
		t.Fatalf("As(wrapped) = %v, %v", e, ok)
	}
	if KindOf(wrapped) != Conflict {
		t.Fatalf("KindOf(wrapped) = %v", KindOf(wrapped))
	}
	if e, ok := As(errors.New("plain")); ok || e != nil {
		t.Fatalf("As(plain) = %v, %v", e, ok)
	}
	for _, err := range []error{errors.New("plain"), nil} {
		if KindOf(err) != Internal {
			t.Fatalf("KindOf(%v) = %v, want Internal", err, KindOf(err))
		}
	}
	// An Internal error is distinguishable from the zero of any other kind.
	if Internal != 0 || Invalid == Internal {
		t.Fatal("Internal must be the zero kind, so an unset Kind is never taken for a client error")
	}
}
