package broker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

// TestPortalPurgesExpiredRefreshTokensOncePerHour: logins purge expired
// refresh tokens at most once an hour (an hour to the second after the
// last purge included), log how many a purge removed when it removed any,
// and log a purge that fails without failing the login.
func TestPortalPurgesExpiredRefreshTokensOncePerHour(t *testing.T) {
	db := storagetest.OpenSQLite(t)
	p := newPortal(t, db)
	core, logs := observer.New(zapcore.InfoLevel)
	p.Logger = zap.New(core)
	start := time.Now().Truncate(time.Second)
	now := start
	p.Now = func() time.Time { return now }
	ctx := context.Background()
	u := createUser(t, p, "ann@example.com", storage.RoleUser, "")
	expired := func() string {
		t.Helper()
		tok := &storage.RefreshToken{JTI: uuid.NewString(), TokenHash: storage.HashRefreshToken(uuid.NewString()), FamilyID: uuid.NewString(),
			UserID: u.ID, IssuedAt: start.Add(-40 * 24 * time.Hour), ExpiresAt: start.Add(-10 * 24 * time.Hour)}
		if err := p.Store.RefreshTokens.Insert(ctx, tok); err != nil {
			t.Fatal(err)
		}
		return tok.TokenHash
	}
	stored := func(hash string) bool {
		t.Helper()
		_, err := p.Store.RefreshTokens.GetByHash(ctx, hash)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			t.Fatal(err)
		}
		return err == nil
	}
	purged := func() []observer.LoggedEntry {
		return logs.FilterMessage("purged expired refresh tokens").All()
	}

	a := expired()
	login(t, p, "ann@example.com")
	if stored(a) {
		t.Fatal("the first login did not purge")
	}
	if got := purged(); len(got) != 1 || got[0].ContextMap()["count"] != int64(1) {
		t.Fatalf("purge logs = %v, want one with count 1", got)
	}

	b := expired()
	now = start.Add(30 * time.Minute)
	login(t, p, "ann@example.com")
	if !stored(b) {
		t.Fatal("a login half an hour after the last purge purged again")
	}
	now = start.Add(time.Hour)
	login(t, p, "ann@example.com")
	if stored(b) {
		t.Fatal("a login an hour after the last purge did not purge")
	}
	now = start.Add(2 * time.Hour)
	login(t, p, "ann@example.com") // purges nothing
	if got := purged(); len(got) != 2 {
		t.Fatalf("%d purge logs, want 2: one per purge that removed tokens", len(got))
	}
	if n := logs.FilterLevelExact(zapcore.WarnLevel).Len(); n != 0 {
		t.Fatalf("%d warnings from purges that worked: %v", n, logs.All())
	}

	if _, err := db.ExecContext(ctx, "CREATE TRIGGER no_purge BEFORE DELETE ON refresh_tokens BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"); err != nil {
		t.Fatal(err)
	}
	c := expired()
	now = start.Add(3 * time.Hour)
	login(t, p, "ann@example.com")
	if !stored(c) {
		t.Fatal("a purge that failed removed a token")
	}
	if logs.FilterMessage("purging expired refresh tokens failed").Len() != 1 {
		t.Fatalf("a failed purge was not logged: %v", logs.All())
	}
}
