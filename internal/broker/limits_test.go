package broker_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

// TestCheckPasswordLimitsAreInclusive: exactly MinPasswordLength characters
// (counted as characters, not bytes) and exactly MaxPasswordBytes bytes are
// accepted; one character fewer or one byte more is refused.
func TestCheckPasswordLimitsAreInclusive(t *testing.T) {
	for _, pw := range []string{
		strings.Repeat("a", broker.MinPasswordLength),
		strings.Repeat("ü", broker.MinPasswordLength), // 8 characters in 16 bytes
		strings.Repeat("a", broker.MaxPasswordBytes),
	} {
		if err := broker.CheckPassword(pw); err != nil {
			t.Errorf("CheckPassword(%d characters, %d bytes) = %v, want it accepted", len([]rune(pw)), len(pw), err)
		}
	}
	for pw, code := range map[string]string{
		strings.Repeat("a", broker.MinPasswordLength-1):  "password_too_short",
		strings.Repeat("ü", broker.MinPasswordLength-1):  "password_too_short",
		strings.Repeat("a", broker.MaxPasswordBytes+1):   "password_too_long",
		strings.Repeat("ü", broker.MaxPasswordBytes/2+1): "password_too_long",
	} {
		err := broker.CheckPassword(pw)
		if e, ok := apperr.As(err); !ok || e.Code != code {
			t.Errorf("CheckPassword(%d characters, %d bytes) = %v, want %s", len([]rune(pw)), len(pw), err, code)
		}
	}
}

// TestStatsLast24hCountsEveryHourOfTheWindow: the last 24 hours start at
// now-24h to the microsecond; the part of that first hour is counted from
// the messages, the whole hours after it from the hourly counters, the
// first of them included.
func TestStatsLast24hCountsEveryHourOfTheWindow(t *testing.T) {
	store := storage.New(storagetest.OpenSQLite(t))
	ctx := context.Background()
	now := time.Date(2026, 12, 2, 12, 30, 0, 0, time.UTC)
	from := now.Add(-24 * time.Hour)
	firstWholeHour := storage.HourStart(storage.HourOf(from) + 1)
	for i, at := range []time.Time{
		from.Add(-time.Microsecond), // before the window
		from,
		firstWholeHour,
		firstWholeHour.Add(30 * time.Minute),
		now.Add(-time.Minute),
	} {
		if err := store.Messages.Insert(ctx, &storage.Message{
			MessageID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), ClientID: "proxy-1",
			SenderNumberHash: fmt.Sprintf("%064d", i), SenderNumberMasked: "+49****00",
			BodyEncrypted: []byte{1}, EncryptionKeyID: "k", PayloadHash: fmt.Sprintf("%064d", i),
			Status: storage.MessageQueued, QueuedAt: at, CreatedAt: at, UpdatedAt: at,
		}); err != nil {
			t.Fatal(err)
		}
	}
	s, err := broker.CollectStats(ctx, store, now)
	if err != nil {
		t.Fatal(err)
	}
	if s.Messages.Last24h != 4 || s.Messages.Last7d != 5 || s.Messages.Total != 5 {
		t.Fatalf("messages = %+v, want 4 in the last 24 hours, 5 in the last 7 days", s.Messages)
	}
}
