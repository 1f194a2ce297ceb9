package broker

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/msgbroker/caddy-msgbroker/storage"
)

// FuzzAuditCursor feeds the audit cursor decoder arbitrary strings and
// arbitrary positions: it never panics, accepts nothing it did not seal for
// the same filters, and gives back exactly the position it sealed.
func FuzzAuditCursor(f *testing.F) {
	log := &AuditLog{CursorKey: []byte(strings.Repeat("k", 32))}
	scope := storage.AuditFilter{Actor: "root@example.com", Outcome: storage.AuditSuccess}
	f.Add("", int64(1), int64(0), "root@example.com")
	f.Add("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", int64(42), time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC).UnixMicro(), "")
	f.Add(log.sealCursor(storage.AuditKey{CreatedAt: time.UnixMicro(1), ID: 7}, scope), int64(-1), int64(-5), "root@example.com")
	f.Add("////", int64(1<<62), int64(1<<62), "\xff")
	f.Fuzz(func(t *testing.T, cursor string, id, micros int64, actor string) {
		key, err := log.openCursor(cursor, scope)
		if err == nil {
			// Only a cursor sealed for this scope opens, and it reseals to
			// itself.
			if again := log.sealCursor(key, scope); again != cursor {
				t.Fatalf("cursor %q opened to %+v, which seals to %q", cursor, key, again)
			}
		} else if !errors.Is(err, errBadCursor) {
			t.Fatalf("cursor %q: error %v, want errBadCursor", cursor, err)
		}

		pos := storage.AuditKey{CreatedAt: time.UnixMicro(micros).UTC(), ID: id}
		sealed := log.sealCursor(pos, scope)
		got, err := log.openCursor(sealed, scope)
		switch {
		case id <= 0:
			if !errors.Is(err, errBadCursor) {
				t.Fatalf("a cursor for id %d opened: %+v, %v", id, got, err)
			}
		case err != nil || got.ID != id || !got.CreatedAt.Equal(pos.CreatedAt):
			t.Fatalf("sealed %+v, opened %+v, %v", pos, got, err)
		}
		other := scope
		other.Actor = actor
		if _, err := log.openCursor(sealed, other); err == nil && actor != scope.Actor {
			t.Fatalf("a cursor for actor %q opened for actor %q", scope.Actor, actor)
		}
	})
}

func TestCursorSealerBindsDomainScopeAndSize(t *testing.T) {
	key := bytes.Repeat([]byte{1}, 32)
	a := cursorSealer{key: key, domain: "one", size: 8}
	c := a.seal([]byte("12345678"), []byte("scope"))
	if p, err := a.open(c, []byte("scope")); err != nil || string(p) != "12345678" {
		t.Fatalf("open = %q, %v", p, err)
	}
	for name, s := range map[string]struct {
		sealer cursorSealer
		scope  string
	}{
		"another domain": {cursorSealer{key: key, domain: "two", size: 8}, "scope"},
		"another scope":  {a, "scopf"},
		"another key":    {cursorSealer{key: bytes.Repeat([]byte{2}, 32), domain: "one", size: 8}, "scope"},
		"another size":   {cursorSealer{key: key, domain: "one", size: 7}, "scope"},
	} {
		if _, err := s.sealer.open(c, []byte(s.scope)); !errors.Is(err, errBadCursor) {
			t.Errorf("%s: error %v, want errBadCursor", name, err)
		}
	}
}
