package broker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/crypto/bcrypt"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

var testActor = broker.Actor{Name: "test-admin", RemoteAddr: "192.0.2.1"}

// newUsers returns the service with the cheapest bcrypt cost, so the tests
// stay fast; TestUsersHashWithCostTwelveByDefault covers the default.
func newUsers(db *bun.DB) (*broker.Users, *storage.Store) {
	store := storage.New(db)
	return &broker.Users{Store: store, BcryptCost: bcrypt.MinCost}, store
}

func lastAudit(t *testing.T, store *storage.Store) storage.AuditEntry {
	t.Helper()
	entries, err := store.Audit.List(context.Background(), storage.AuditFilter{Limit: 1})
	if err != nil || len(entries) == 0 {
		t.Fatalf("reading the audit log: %v (%d entries)", err, len(entries))
	}
	return entries[0]
}

func wantKind(t *testing.T, err error, kind apperr.Kind, code string) {
	t.Helper()
	e, ok := apperr.As(err)
	if !ok || e.Kind != kind || e.Code != code {
		t.Fatalf("error = %v, want kind %d code %s", err, kind, code)
	}
}

func TestUsersCreateHashesThePasswordAndAudits(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		users, store := newUsers(db)
		ctx := context.Background()
		u, err := users.Create(ctx, testActor, broker.NewUser{Email: " Alice@Example.com", Password: "correct horse", Role: storage.RoleUser, ClientID: "proxy-1"})
		if err != nil {
			t.Fatal(err)
		}
		stored, err := store.Users.GetByID(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		if stored.Email != "alice@example.com" || stored.Role != storage.RoleUser || !stored.IsActive || stored.ClientID == nil || *stored.ClientID != "proxy-1" {
			t.Fatalf("stored user = %+v", stored)
		}
		if bcrypt.CompareHashAndPassword([]byte(stored.PasswordHash), []byte("correct horse")) != nil {
			t.Fatal("the stored hash does not match the password")
		}
		if strings.Contains(stored.PasswordHash, "correct horse") {
			t.Fatal("the password is stored in clear")
		}
		a := lastAudit(t, store)
		if a.Actor != testActor.Name || a.Action != "user.create" || a.Outcome != storage.AuditSuccess || !strings.Contains(a.Target, "alice@example.com") || a.RemoteAddr != testActor.RemoteAddr {
			t.Fatalf("audit entry = %+v", a)
		}
	})
}

func TestUsersCreateRejectsBadInput(t *testing.T) {
	db := storagetest.OpenSQLite(t)
	users, store := newUsers(db)
	ctx := context.Background()
	if _, err := users.Create(ctx, testActor, broker.NewUser{Email: "taken@example.com", Password: "long enough"}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		req  broker.NewUser
		kind apperr.Kind
		code string
	}{
		{"short password", broker.NewUser{Email: "a@example.com", Password: "seven77"}, apperr.Invalid, "password_too_short"},
		{"password over 72 bytes", broker.NewUser{Email: "a@example.com", Password: strings.Repeat("x", 73)}, apperr.Invalid, "password_too_long"},
		{"blank password", broker.NewUser{Email: "a@example.com", Password: "          "}, apperr.Invalid, "password_blank"},
		{"not an email", broker.NewUser{Email: "alice", Password: "long enough"}, apperr.Invalid, "invalid_email"},
		{"display name", broker.NewUser{Email: "Alice <a@example.com>", Password: "long enough"}, apperr.Invalid, "invalid_email"},
		{"unknown role", broker.NewUser{Email: "a@example.com", Password: "long enough", Role: "root"}, apperr.Invalid, "invalid_role"},
		{"client for admin", broker.NewUser{Email: "a@example.com", Password: "long enough", Role: storage.RoleAdmin, ClientID: "p"}, apperr.Invalid, "client_for_admin"},
		{"bad client id", broker.NewUser{Email: "a@example.com", Password: "long enough", ClientID: "a b"}, apperr.Invalid, "invalid_client_id"},
		{"duplicate email", broker.NewUser{Email: "TAKEN@example.com", Password: "long enough"}, apperr.Conflict, "email_taken"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := users.Create(ctx, testActor, c.req)
			wantKind(t, err, c.kind, c.code)
			if strings.Contains(err.Error(), c.req.Password) {
				t.Fatalf("the error repeats the password: %v", err)
			}
			if a := lastAudit(t, store); a.Action != "user.create" || a.Outcome != storage.AuditFailure {
				t.Fatalf("audit entry = %+v", a)
			}
		})
	}
	list, err := store.Users.List(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("users after refusals: %d (%v), want 1", len(list), err)
	}
}

func TestUsersHashWithCostTwelveByDefault(t *testing.T) {
	hash, err := (&broker.Users{}).HashPassword("long enough")
	if err != nil {
		t.Fatal(err)
	}
	if cost, err := bcrypt.Cost([]byte(hash)); err != nil || cost != 12 {
		t.Fatalf("cost = %d (%v), want 12", cost, err)
	}
}

func TestUsersDeleteRefusesTheLastActiveAdmin(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		users, store := newUsers(db)
		ctx := context.Background()
		admin, err := users.Create(ctx, testActor, broker.NewUser{Email: "root@example.com", Password: "long enough", Role: storage.RoleAdmin})
		if err != nil {
			t.Fatal(err)
		}
		// An inactive admin cannot log in, so it does not count.
		dormant, err := users.Create(ctx, testActor, broker.NewUser{Email: "dormant@example.com", Password: "long enough", Role: storage.RoleAdmin})
		if err != nil {
			t.Fatal(err)
		}
		inactive := false
		if _, err := users.Update(ctx, testActor, dormant.ID, broker.UserChanges{IsActive: &inactive}); err != nil {
			t.Fatal(err)
		}

		wantKind(t, users.Delete(ctx, testActor, admin.ID), apperr.Conflict, "last_admin")
		if a := lastAudit(t, store); a.Action != "user.delete" || a.Outcome != storage.AuditFailure {
			t.Fatalf("audit entry = %+v", a)
		}
		demote := storage.RoleUser
		_, err = users.Update(ctx, testActor, admin.ID, broker.UserChanges{Role: &demote})
		wantKind(t, err, apperr.Conflict, "last_admin")
		_, err = users.Update(ctx, testActor, admin.ID, broker.UserChanges{IsActive: &inactive})
		wantKind(t, err, apperr.Conflict, "last_admin")
		if _, err := store.Users.GetByID(ctx, admin.ID); err != nil {
			t.Fatalf("the last admin is gone: %v", err)
		}

		if _, err := users.Create(ctx, testActor, broker.NewUser{Email: "second@example.com", Password: "long enough", Role: storage.RoleAdmin}); err != nil {
			t.Fatal(err)
		}
		if err := users.Delete(ctx, testActor, admin.ID); err != nil {
			t.Fatalf("deleting an admin that is not the last: %v", err)
		}
		wantKind(t, users.Delete(ctx, testActor, admin.ID), apperr.NotFound, "user_not_found")
	})
}

func TestUsersSetPasswordReplacesTheHashAndUnlocks(t *testing.T) {
	db := storagetest.OpenSQLite(t)
	users, store := newUsers(db)
	ctx := context.Background()
	u, err := users.Create(ctx, testActor, broker.NewUser{Email: "bob@example.com", Password: "first password"})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Users.LockUntil(ctx, u.ID, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	wantKind(t, users.SetPassword(ctx, testActor, u.ID, "short"), apperr.Invalid, "password_too_short")
	if err := users.SetPassword(ctx, testActor, u.ID, "second password"); err != nil {
		t.Fatal(err)
	}
	stored, err := store.Users.GetByID(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if bcrypt.CompareHashAndPassword([]byte(stored.PasswordHash), []byte("second password")) != nil {
		t.Fatal("the new password does not match")
	}
	if stored.LockedAt(time.Now()) {
		t.Fatal("the account is still locked after a password reset")
	}
	if a := lastAudit(t, store); a.Action != "user.password" || a.Outcome != storage.AuditSuccess || strings.Contains(a.Target+ptr(a.Details), "second password") {
		t.Fatalf("audit entry = %+v", a)
	}
	wantKind(t, users.SetPassword(ctx, testActor, 999, "long enough"), apperr.NotFound, "user_not_found")
}

func TestUsersLookupByIDOrEmail(t *testing.T) {
	db := storagetest.OpenSQLite(t)
	users, _ := newUsers(db)
	ctx := context.Background()
	u, err := users.Create(ctx, testActor, broker.NewUser{Email: "carol@example.com", Password: "long enough"})
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"1", "Carol@Example.com"} {
		got, err := users.Lookup(ctx, ref)
		if err != nil || got.ID != u.ID {
			t.Fatalf("Lookup(%q) = %v, %v", ref, got, err)
		}
	}
	for _, ref := range []string{"1x", "0", "-1"} { // ids start at 1
		_, err = users.Lookup(ctx, ref)
		wantKind(t, err, apperr.Invalid, "invalid_user")
	}
	_, err = users.Lookup(ctx, "7")
	wantKind(t, err, apperr.NotFound, "user_not_found")
}

func ptr(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func TestUsersAuditARefusedOverlongEmail(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		users, store := newUsers(db)
		email := strings.Repeat("é", 200) + "@example.com"
		_, err := users.Create(context.Background(), testActor, broker.NewUser{Email: email, Password: "long enough"})
		wantKind(t, err, apperr.Invalid, "invalid_email")
		if a := lastAudit(t, store); a.Action != "user.create" || a.Outcome != storage.AuditFailure || len(a.Target) > 255 {
			t.Fatalf("audit entry = %+v", a)
		}
	})
}

// TestUsersSetPasswordClearsFailedLogins: a new password also clears failed
// logins that have not locked the account yet, so the user gets every
// attempt back.
func TestUsersSetPasswordClearsFailedLogins(t *testing.T) {
	users, store := newUsers(storagetest.OpenSQLite(t))
	ctx := context.Background()
	u, err := users.Create(ctx, testActor, broker.NewUser{Email: "dave@example.com", Password: "first password"})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := store.Users.RecordLoginFailure(ctx, u.ID, 5, time.Hour, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if err := users.SetPassword(ctx, testActor, u.ID, "second password"); err != nil {
		t.Fatal(err)
	}
	stored, err := store.Users.GetByID(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.FailedLogins != 0 || stored.LockedAt(time.Now()) {
		t.Fatalf("after a password reset: %d failed logins, locked %v; want 0, unlocked", stored.FailedLogins, stored.LockedAt(time.Now()))
	}
}

// TestUsersLastAdminRuleTouchesOnlyWhatRemovesAnAdmin: the last active
// administrator may still be changed in ways that keep it one (unlocked,
// set active), and without any active administrator plain users can still
// be deactivated and deleted.
func TestUsersLastAdminRuleTouchesOnlyWhatRemovesAnAdmin(t *testing.T) {
	users, _ := newUsers(storagetest.OpenSQLite(t))
	ctx := context.Background()
	plain, err := users.Create(ctx, testActor, broker.NewUser{Email: "plain@example.com", Password: "long enough"})
	if err != nil {
		t.Fatal(err)
	}
	inactive := false
	if _, err := users.Update(ctx, testActor, plain.ID, broker.UserChanges{IsActive: &inactive}); err != nil {
		t.Fatalf("deactivating a user with no administrator around: %v", err)
	}
	if err := users.Delete(ctx, testActor, plain.ID); err != nil {
		t.Fatalf("deleting a user with no administrator around: %v", err)
	}

	admin, err := users.Create(ctx, testActor, broker.NewUser{Email: "root@example.com", Password: "long enough", Role: storage.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	active, role := true, storage.RoleAdmin
	if _, err := users.Update(ctx, testActor, admin.ID, broker.UserChanges{Role: &role, IsActive: &active, Unlock: true}); err != nil {
		t.Fatalf("unlocking the last admin: %v", err)
	}
}

// TestUsersEmailLimitIsInclusive: an address of exactly 255 characters is
// accepted, one of 256 refused, and a refused request's audit entry keeps
// all 255 characters of the address it names.
func TestUsersEmailLimitIsInclusive(t *testing.T) {
	users, store := newUsers(storagetest.OpenSQLite(t))
	ctx := context.Background()
	const domain = "@example.com"
	email := strings.Repeat("a", 255-len(domain)) + domain
	_, err := users.Create(ctx, testActor, broker.NewUser{Email: email, Password: "long enough", Role: "boss"})
	wantKind(t, err, apperr.Invalid, "invalid_role")
	if a := lastAudit(t, store); a.Action != "user.create" || a.Outcome != storage.AuditFailure || a.Target != email {
		t.Fatalf("audit entry = %+v, want a failed user.create naming %s", a, email)
	}
	if _, err := users.Create(ctx, testActor, broker.NewUser{Email: email, Password: "long enough"}); err != nil {
		t.Fatalf("an address of 255 characters: %v", err)
	}
	_, err = users.Create(ctx, testActor, broker.NewUser{Email: "b" + email, Password: "long enough"})
	wantKind(t, err, apperr.Invalid, "invalid_email")
}

// TestUsersLogAnAuditWriteTheyCannotMake: a change whose audit entry cannot
// be written is still made and the failure is logged; an audited change
// logs nothing.
func TestUsersLogAnAuditWriteTheyCannotMake(t *testing.T) {
	db := storagetest.OpenSQLite(t)
	users, store := newUsers(db)
	core, logs := observer.New(zapcore.InfoLevel)
	users.Logger = zap.New(core)
	ctx := context.Background()
	if _, err := users.Create(ctx, testActor, broker.NewUser{Email: "erin@example.com", Password: "long enough"}); err != nil {
		t.Fatal(err)
	}
	if n := logs.Len(); n != 0 {
		t.Fatalf("an audited change logged %d entries: %v", n, logs.All())
	}
	if _, err := db.ExecContext(ctx, "DROP TABLE audit_log"); err != nil {
		t.Fatal(err)
	}
	u, err := users.Create(ctx, testActor, broker.NewUser{Email: "frank@example.com", Password: "long enough"})
	if err != nil {
		t.Fatalf("a change that cannot be audited: %v", err)
	}
	if _, err := store.Users.GetByID(ctx, u.ID); err != nil {
		t.Fatalf("the user was not created: %v", err)
	}
	if logs.FilterMessage("audit log write failed").FilterField(zap.String("action", "user.create")).Len() != 1 {
		t.Fatalf("the failed audit write was not logged: %v", logs.All())
	}
}
