package sessions

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// clock is a settable time for the in-process stores.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newClock() *clock { return &clock{t: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)} }

// TestMemoryForgetsExpiredSessionsAsItGrows: once the store has grown by
// enough sessions it drops the expired ones and keeps the live ones, so a
// node with many devices that never come back does not grow without bound.
func TestMemoryForgetsExpiredSessionsAsItGrows(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	m := NewMemory(time.Minute)
	m.now = c.now
	for i := range 62 {
		if err := m.Create(ctx, fmt.Sprint("old", i), session("u", "d")); err != nil {
			t.Fatal(err)
		}
	}
	c.advance(45 * time.Second)
	if err := m.Create(ctx, "live", session("u", "live")); err != nil {
		t.Fatal(err)
	}
	if n, _ := m.Count(ctx); n != 63 {
		t.Fatalf("count before the store has grown enough: %d, want 63", n)
	}
	c.advance(30 * time.Second) // the 62 old sessions expired 15 s ago
	if err := m.Create(ctx, "new", session("u", "new")); err != nil {
		t.Fatal(err)
	}
	if n, _ := m.Count(ctx); n != 2 {
		t.Fatalf("count after the 64th session: %d, want 2 (live and new)", n)
	}
	if s, err := m.Get(ctx, "live"); err != nil || s.DeviceID != "live" {
		t.Fatalf("the live session: %+v, %v", s, err)
	}
}

// TestMemoryExpiredSessionIsGoneForEveryOperation: at its expiry instant a
// session can no longer be read, deleted or failed, and its key is free;
// a refused Create just before expiry restarts the idle TTL instead.
func TestMemoryExpiredSessionIsGoneForEveryOperation(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	m := NewMemory(time.Minute)
	m.now = c.now
	for _, k := range []string{"get", "delete", "fail", "create", "refused"} {
		if err := m.Create(ctx, k, session("u", k)); err != nil {
			t.Fatal(err)
		}
	}
	c.advance(time.Minute - time.Nanosecond)
	if err := m.Create(ctx, "refused", session("u", "again")); err != ErrExists {
		t.Fatalf("create a nanosecond before expiry: %v, want ErrExists", err)
	}
	c.advance(time.Nanosecond)
	if _, err := m.Get(ctx, "get"); err != ErrNotFound {
		t.Errorf("get at expiry: %v, want ErrNotFound", err)
	}
	if err := m.Delete(ctx, "delete"); err != ErrNotFound {
		t.Errorf("delete at expiry: %v, want ErrNotFound", err)
	}
	if closed, err := m.Fail(ctx, "fail", 1); closed || err != nil {
		t.Errorf("fail at expiry: closed %v, %v", closed, err)
	}
	if err := m.Create(ctx, "create", session("u", "again")); err != nil {
		t.Errorf("create at expiry: %v", err)
	}
	if _, err := m.Get(ctx, "refused"); err != nil {
		t.Errorf("a session whose TTL a refused create restarted is gone at its first expiry: %v", err)
	}
}

// TestMemoryMessagesForgetAnIDAfterItsTTL: a repeated message id is a
// duplicate until the TTL after the first one was received, then new.
func TestMemoryMessagesForgetAnIDAfterItsTTL(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	m := NewMemoryMessages(time.Hour, 10)
	m.now = c.now
	r := record("a")
	r.ReceivedAt = c.t
	for i, tc := range []struct {
		advance time.Duration
		dup     bool
	}{{0, false}, {time.Hour - time.Nanosecond, true}, {time.Nanosecond, false}} {
		c.advance(tc.advance)
		dup, err := m.Put(ctx, r)
		if err != nil || dup != tc.dup {
			t.Errorf("put %d: duplicate %v, %v; want %v", i, dup, err, tc.dup)
		}
	}
	if got, ok := m.Get(r.ID); !ok || got.Data != "a" {
		t.Errorf("stored %+v, %v", got, ok)
	}
}

// TestMemoryMessagesKeepTheNewestUpToTheLimit: at the limit the oldest
// record goes and the newest ones stay.
func TestMemoryMessagesKeepTheNewestUpToTheLimit(t *testing.T) {
	ctx := context.Background()
	m := NewMemoryMessages(0, 2)
	for _, data := range []string{"a", "b", "c"} {
		if _, err := m.Put(ctx, record(data)); err != nil {
			t.Fatal(err)
		}
	}
	for data, want := range map[string]bool{"a": false, "b": true, "c": true} {
		if _, ok := m.Get(record(data).ID); ok != want {
			t.Errorf("record %s kept: %v, want %v", data, ok, want)
		}
	}
}

// TestMemoryCountIncludesExpiredSessionsUntilSwept: as documented, Count
// of the in-process store is what it holds, so a few expired sessions
// stay counted until the store has grown enough to sweep; it does not
// walk every session on every create.
func TestMemoryCountIncludesExpiredSessionsUntilSwept(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	m := NewMemory(time.Minute)
	m.now = c.now
	if err := m.Create(ctx, "a", session("u", "a")); err != nil {
		t.Fatal(err)
	}
	c.advance(2 * time.Minute)
	if err := m.Create(ctx, "b", session("u", "b")); err != nil {
		t.Fatal(err)
	}
	if n, _ := m.Count(ctx); n != 2 {
		t.Fatalf("count %d, want 2: the expired session is dropped only by a sweep", n)
	}
}
