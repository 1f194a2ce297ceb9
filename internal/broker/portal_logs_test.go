package broker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/crypto/bcrypt"

	"github.com/msgbroker/caddy-msgbroker/internal/tokens"
	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

// TestPortalLoginExpiresInIsTheAccessTokenLifetime in seconds.
func TestPortalLoginExpiresInIsTheAccessTokenLifetime(t *testing.T) {
	p := newPortal(t, storagetest.OpenSQLite(t))
	createUser(t, p, "ann@example.com", storage.RoleUser, "")
	pair := login(t, p, "ann@example.com")
	if want := int64(p.Tokens.AccessTTL() / time.Second); pair.ExpiresIn != want || want <= 0 {
		t.Fatalf("expires_in = %d, want %d seconds", pair.ExpiresIn, want)
	}
}

// TestPortalRehashFailureIsLoggedAndTheLoginSucceeds: a rehash that cannot
// be stored costs only the upgrade and is logged; one that is stored logs
// nothing.
func TestPortalRehashFailureIsLoggedAndTheLoginSucceeds(t *testing.T) {
	db := storagetest.OpenSQLite(t)
	p := newPortal(t, db)
	core, logs := observer.New(zapcore.WarnLevel)
	p.Logger = zap.New(core)
	ctx := context.Background()
	createUser(t, p, "ann@example.com", storage.RoleUser, "")
	createUser(t, p, "bob@example.com", storage.RoleUser, "")
	p.Users.BcryptCost = bcrypt.MinCost + 1
	login(t, p, "ann@example.com")
	if logs.Len() != 0 {
		t.Fatalf("a stored rehash logged %v", logs.All())
	}
	if _, err := db.ExecContext(ctx, "CREATE TRIGGER no_rehash BEFORE UPDATE OF password_hash ON users BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"); err != nil {
		t.Fatal(err)
	}
	login(t, p, "bob@example.com")
	if logs.FilterMessage("rehashing a password at the configured cost failed").Len() != 1 {
		t.Fatalf("a failed rehash was not logged: %v", logs.All())
	}
}

// TestPortalLockoutIsAuditedAndAFailedAuditWriteLogged: locking an account
// writes a user.lockout entry and logs no error; when that entry cannot be
// written, the lock still holds and the failure is logged.
func TestPortalLockoutIsAuditedAndAFailedAuditWriteLogged(t *testing.T) {
	db := storagetest.OpenSQLite(t)
	p := newPortal(t, db)
	core, logs := observer.New(zapcore.ErrorLevel)
	p.Logger = zap.New(core)
	ctx := context.Background()
	lockOut := func(email string) {
		t.Helper()
		for range 3 {
			if _, err := p.Login(ctx, email, "not the password", "192.0.2.10"); err == nil {
				t.Fatal("a wrong password logged in")
			}
		}
		if u, err := p.Store.Users.GetByEmail(ctx, email); err != nil || u.LockedUntil == nil {
			t.Fatalf("%s not locked after 3 failures: %+v, %v", email, u, err)
		}
	}
	ann := createUser(t, p, "ann@example.com", storage.RoleUser, "")
	createUser(t, p, "bob@example.com", storage.RoleUser, "")
	lockOut("ann@example.com")
	a := lastAudit(t, p.Store)
	if a.Action != "user.lockout" || a.Actor != "system" || a.Target != "user 1 ann@example.com" || a.Details == nil || *a.Details != "3 failed logins" || ann.ID != 1 {
		t.Fatalf("audit entry = %+v", a)
	}
	if logs.Len() != 0 {
		t.Fatalf("an audited lockout logged %v", logs.All())
	}
	if _, err := db.ExecContext(ctx, "DROP TABLE audit_log"); err != nil {
		t.Fatal(err)
	}
	lockOut("bob@example.com")
	if logs.FilterMessage("audit log write failed").Len() != 1 {
		t.Fatalf("the failed audit write was not logged: %v", logs.All())
	}
}

// TestPortalLogoutAcceptsOnlyAnExpiredToken among refused ones: the session
// of an expired refresh token is over anyway, but a token that is not one
// is refused.
func TestPortalLogoutAcceptsOnlyAnExpiredToken(t *testing.T) {
	p := newPortal(t, storagetest.OpenSQLite(t))
	now := time.Now()
	tm, err := tokens.New(tokens.Config{Signing: tokens.HMACKey([]byte(strings.Repeat("k", 32))), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	p.Tokens = tm
	createUser(t, p, "ann@example.com", storage.RoleUser, "")
	pair := login(t, p, "ann@example.com")
	if err := p.Logout(context.Background(), "not a token"); err == nil {
		t.Fatal("Logout accepted a string that is no token")
	}
	now = pair.RefreshExpiresAt.Add(time.Hour)
	if err := p.Logout(context.Background(), pair.RefreshToken); err != nil {
		t.Fatalf("Logout of an expired refresh token: %v", err)
	}
}

// TestPortalPasswordChangeIsAudited with its outcome, and a change whose
// entry cannot be written is still made and the failure logged.
func TestPortalPasswordChangeIsAudited(t *testing.T) {
	db := storagetest.OpenSQLite(t)
	p := newPortal(t, db)
	core, logs := observer.New(zapcore.ErrorLevel)
	p.Logger = zap.New(core)
	ctx := context.Background()
	createUser(t, p, "ann@example.com", storage.RoleUser, "")
	me, err := p.Authenticate(ctx, login(t, p, "ann@example.com").AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.ChangePassword(ctx, me, "wrong password", "a brand new secret", "192.0.2.10"); err == nil {
		t.Fatal("a wrong current password was accepted")
	}
	if a := lastAudit(t, p.Store); a.Action != "user.password_change" || a.Outcome != storage.AuditFailure || a.Details == nil || !strings.HasPrefix(*a.Details, "wrong_password: ") {
		t.Fatalf("audit entry of a refused change = %+v", a)
	}
	if _, err := p.ChangePassword(ctx, me, portalPassword, "a brand new secret", "192.0.2.10"); err != nil {
		t.Fatal(err)
	}
	if a := lastAudit(t, p.Store); a.Action != "user.password_change" || a.Outcome != storage.AuditSuccess || a.Details != nil || a.Actor != "ann@example.com" {
		t.Fatalf("audit entry of a change = %+v", a)
	}
	if logs.Len() != 0 {
		t.Fatalf("audited changes logged %v", logs.All())
	}
	if _, err := db.ExecContext(ctx, "DROP TABLE audit_log"); err != nil {
		t.Fatal(err)
	}
	pair, err := p.Login(ctx, "ann@example.com", "a brand new secret", "192.0.2.10")
	if err != nil {
		t.Fatal(err)
	}
	if me, err = p.Authenticate(ctx, pair.AccessToken); err != nil {
		t.Fatal(err)
	}
	if _, err := p.ChangePassword(ctx, me, "a brand new secret", "a third secret!", "192.0.2.10"); err != nil {
		t.Fatalf("a change that cannot be audited: %v", err)
	}
	if logs.FilterMessage("audit log write failed").Len() != 1 {
		t.Fatalf("the failed audit write was not logged: %v", logs.All())
	}
}
