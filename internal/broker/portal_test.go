package broker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/uptrace/bun"
	"golang.org/x/crypto/bcrypt"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/internal/tokens"
	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

const portalPassword = "correct horse battery"

func newPortal(t *testing.T, db *bun.DB) *broker.Portal {
	t.Helper()
	users, store := newUsers(db)
	tm, err := tokens.New(tokens.Config{Signing: tokens.HMACKey([]byte(strings.Repeat("k", 32)))})
	if err != nil {
		t.Fatal(err)
	}
	// No bcrypt budget: tests log in faster than any budget would allow;
	// TestPortalBcryptBudget has one.
	return &broker.Portal{Store: store, Tokens: tm, Users: users, CursorKey: []byte(strings.Repeat("c", 32)),
		Pool:   broker.NewHashPool(broker.HashLimits{PerSecond: -1}),
		Limits: broker.LoginLimits{MaxFailures: 3, AddressMaxFailures: 100, Lockout: time.Minute, FailureDelay: -1}}
}

func createUser(t *testing.T, p *broker.Portal, email, role, client string) *storage.User {
	t.Helper()
	u, err := p.Users.Create(context.Background(), testActor, broker.NewUser{Email: email, Password: portalPassword, Role: role, ClientID: client})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func login(t *testing.T, p *broker.Portal, email string) broker.Pair {
	t.Helper()
	pair, err := p.Login(context.Background(), email, portalPassword, "192.0.2.10")
	if err != nil {
		t.Fatalf("login %s: %v", email, err)
	}
	return pair
}

func TestPortalRefreshRotatesAndReuseRevokesTheFamily(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		p := newPortal(t, db)
		ctx := context.Background()
		createUser(t, p, "ann@example.com", storage.RoleUser, "proxy-1")
		first := login(t, p, "ann@example.com")
		second, err := p.Refresh(ctx, first.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		third, err := p.Refresh(ctx, second.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		// The first token, spent, comes back: someone kept a copy.
		_, err = p.Refresh(ctx, first.RefreshToken)
		wantKind(t, err, apperr.Unauthenticated, "token_reused")
		_, err = p.Refresh(ctx, third.RefreshToken)
		wantKind(t, err, apperr.Unauthenticated, "token_revoked")

		// Another login of the same user is another family and lives on.
		other := login(t, p, "ann@example.com")
		if _, err := p.Refresh(ctx, other.RefreshToken); err != nil {
			t.Fatalf("an unrelated session died with the reused family: %v", err)
		}
	})
}

func TestPortalLogoutEndsTheSession(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		p := newPortal(t, db)
		ctx := context.Background()
		createUser(t, p, "ann@example.com", storage.RoleUser, "proxy-1")
		pair := login(t, p, "ann@example.com")
		if err := p.Logout(ctx, pair.RefreshToken); err != nil {
			t.Fatal(err)
		}
		_, err := p.Refresh(ctx, pair.RefreshToken)
		wantKind(t, err, apperr.Unauthenticated, "token_revoked")
	})
}

func TestPortalPasswordChangeEndsOtherSessions(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		p := newPortal(t, db)
		ctx := context.Background()
		createUser(t, p, "ann@example.com", storage.RoleUser, "proxy-1")
		laptop := login(t, p, "ann@example.com")
		phone := login(t, p, "ann@example.com")
		me, err := p.Authenticate(ctx, laptop.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.ChangePassword(ctx, me, "wrong password", "a brand new secret", "192.0.2.10")
		wantKind(t, err, apperr.Forbidden, "wrong_password")
		fresh, err := p.ChangePassword(ctx, me, portalPassword, "a brand new secret", "192.0.2.10")
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.Authenticate(ctx, phone.AccessToken)
		wantKind(t, err, apperr.Unauthenticated, "token_superseded")
		_, err = p.Refresh(ctx, phone.RefreshToken)
		wantKind(t, err, apperr.Unauthenticated, "token_revoked")
		if _, err := p.Authenticate(ctx, fresh.AccessToken); err != nil {
			t.Fatalf("the pair returned by the change is refused: %v", err)
		}
		if _, err := p.Refresh(ctx, fresh.RefreshToken); err != nil {
			t.Fatalf("the refresh token returned by the change is refused: %v", err)
		}
	})
}

func TestPortalRefusesTokensOfDeletedAndDeactivatedUsers(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		p := newPortal(t, db)
		ctx := context.Background()
		createUser(t, p, "root@example.com", storage.RoleAdmin, "")
		gone := createUser(t, p, "gone@example.com", storage.RoleUser, "")
		idle := createUser(t, p, "idle@example.com", storage.RoleUser, "")
		goneTok, idleTok := login(t, p, "gone@example.com"), login(t, p, "idle@example.com")
		if err := p.Users.Delete(ctx, testActor, gone.ID); err != nil {
			t.Fatal(err)
		}
		off := false
		if _, err := p.Users.Update(ctx, testActor, idle.ID, broker.UserChanges{IsActive: &off}); err != nil {
			t.Fatal(err)
		}
		_, err := p.Authenticate(ctx, goneTok.AccessToken)
		wantKind(t, err, apperr.Unauthenticated, "token_user_unknown")
		_, err = p.Authenticate(ctx, idleTok.AccessToken)
		wantKind(t, err, apperr.Unauthenticated, "token_user_inactive")
		// Deactivation revoked the sessions, so reactivation revives none.
		_, err = p.Refresh(ctx, idleTok.RefreshToken)
		wantKind(t, err, apperr.Unauthenticated, "token_revoked")
	})
}

func TestPortalLocksAnAccountAfterFailuresUntilTheLockoutEnds(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		p := newPortal(t, db)
		now := time.Now()
		p.Now = func() time.Time { return now }
		ctx := context.Background()
		createUser(t, p, "ann@example.com", storage.RoleUser, "")
		for range 3 {
			_, err := p.Login(ctx, "ann@example.com", "not the password", "192.0.2.10")
			wantKind(t, err, apperr.Unauthenticated, "invalid_credentials")
		}
		locked, err := p.Store.Users.GetByEmail(ctx, "ann@example.com")
		if err != nil || locked.LockedUntil == nil {
			t.Fatalf("not locked after 3 failures: %+v, %v", locked, err)
		}
		// Without the password a locked account looks like any other
		// failure, an unknown email's included, and guessing on does not
		// push the lock further.
		now = now.Add(time.Second)
		for _, email := range []string{"ann@example.com", "ann@example.com", "ann@example.com", "nobody@example.com"} {
			_, err := p.Login(ctx, email, "not the password", "192.0.2.10")
			wantKind(t, err, apperr.Unauthenticated, "invalid_credentials")
		}
		still, err := p.Store.Users.GetByEmail(ctx, "ann@example.com")
		if err != nil || still.LockedUntil == nil || !still.LockedUntil.Equal(*locked.LockedUntil) {
			t.Fatalf("failures while locked moved the lock from %v to %+v (%v)", locked.LockedUntil, still, err)
		}
		// The right password is told of the lock, and still waits.
		_, err = p.Login(ctx, "ann@example.com", portalPassword, "192.0.2.10")
		wantKind(t, err, apperr.TooManyRequests, "login_locked")
		var lo *broker.LockedOut
		if e, _ := apperr.As(err); e == nil || !asLocked(e.Err, &lo) || lo.RetryAfterSeconds() != 59 {
			t.Fatalf("lockout cause = %v, want 59 s to wait", err)
		}
		now = now.Add(60 * time.Second)
		if _, err := p.Login(ctx, "ann@example.com", portalPassword, "192.0.2.10"); err != nil {
			t.Fatalf("after the lockout: %v", err)
		}
	})
}

func asLocked(err error, lo **broker.LockedOut) bool {
	l, ok := err.(*broker.LockedOut)
	*lo = l
	return ok
}

func TestPortalLocksAnAddressTryingUnknownAccounts(t *testing.T) {
	p := newPortal(t, storagetest.OpenSQLite(t))
	p.Limits.AddressMaxFailures = 4
	ctx := context.Background()
	createUser(t, p, "ann@example.com", storage.RoleUser, "")
	for i := range 4 {
		_, err := p.Login(ctx, fmt.Sprintf("nobody%d@example.com", i), "whatever1", "198.51.100.7")
		wantKind(t, err, apperr.Unauthenticated, "invalid_credentials")
	}
	_, err := p.Login(ctx, "ann@example.com", portalPassword, "198.51.100.7")
	wantKind(t, err, apperr.TooManyRequests, "login_locked")
	if _, err := p.Login(ctx, "ann@example.com", portalPassword, "198.51.100.8"); err != nil {
		t.Fatalf("another address is locked too: %v", err)
	}
}

func TestPortalRehashesAPasswordOfAnotherCostOnLogin(t *testing.T) {
	p := newPortal(t, storagetest.OpenSQLite(t))
	ctx := context.Background()
	u := createUser(t, p, "ann@example.com", storage.RoleUser, "")
	p.Users.BcryptCost = bcrypt.MinCost + 1
	login(t, p, "ann@example.com")
	stored, err := p.Store.Users.GetByID(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if cost, _ := bcrypt.Cost([]byte(stored.PasswordHash)); cost != bcrypt.MinCost+1 {
		t.Fatalf("hash cost after login = %d, want %d", cost, bcrypt.MinCost+1)
	}
	login(t, p, "ann@example.com")
}

func insertMessages(t *testing.T, store *storage.Store, client string, n int) []string {
	t.Helper()
	var ids []string
	for range n {
		m := &storage.Message{MessageID: uuid.NewString(), ClientID: client, SenderNumberHash: strings.Repeat("a", 64),
			SenderNumberMasked: "+4915****0000", BodyEncrypted: []byte("x"), EncryptionKeyID: "k1", PayloadHash: strings.Repeat("b", 64)}
		if err := store.Messages.Insert(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.MessageID)
	}
	return ids
}

func TestPortalConfinesTenantsToTheirClient(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		p := newPortal(t, db)
		ctx := context.Background()
		createUser(t, p, "root@example.com", storage.RoleAdmin, "")
		createUser(t, p, "ann@example.com", storage.RoleUser, "proxy-a")
		createUser(t, p, "bob@example.com", storage.RoleUser, "proxy-b")
		aIDs := insertMessages(t, p.Store, "proxy-a", 5)
		insertMessages(t, p.Store, "proxy-b", 5)
		auth := func(email string) *broker.Principal {
			pr, err := p.Authenticate(ctx, login(t, p, email).AccessToken)
			if err != nil {
				t.Fatal(err)
			}
			return pr
		}
		root, ann, bob := auth("root@example.com"), auth("ann@example.com"), auth("bob@example.com")

		seen := map[string]bool{}
		q := broker.MessageQuery{Limit: "2"}
		for pages := 0; ; pages++ {
			page, err := p.ListMessages(ctx, ann, q)
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range page.Items {
				if it.ClientID != "proxy-a" || seen[it.MessageID] {
					t.Fatalf("ann saw %+v", it)
				}
				seen[it.MessageID] = true
			}
			if page.NextCursor == "" {
				break
			}
			// Bob may not continue Ann's list, and an edited cursor is refused.
			_, err = p.ListMessages(ctx, bob, broker.MessageQuery{Limit: "2", Cursor: page.NextCursor})
			wantKind(t, err, apperr.Invalid, "invalid_cursor")
			edited := []byte(page.NextCursor)
			edited[3] ^= 1
			_, err = p.ListMessages(ctx, ann, broker.MessageQuery{Limit: "2", Cursor: string(edited)})
			wantKind(t, err, apperr.Invalid, "invalid_cursor")
			q.Cursor = page.NextCursor
		}
		if len(seen) != 5 {
			t.Fatalf("ann saw %d of her 5 messages", len(seen))
		}
		_, err := p.ListMessages(ctx, ann, broker.MessageQuery{ClientID: "proxy-b"})
		wantKind(t, err, apperr.Forbidden, "client_forbidden")
		_, err = p.GetMessage(ctx, bob, aIDs[0], false, "192.0.2.1")
		wantKind(t, err, apperr.NotFound, "message_not_found")
		_, err = p.GetMessage(ctx, ann, aIDs[0], true, "192.0.2.1")
		wantKind(t, err, apperr.Forbidden, "decrypt_forbidden")

		all, err := p.ListMessages(ctx, root, broker.MessageQuery{Limit: "200"})
		if err != nil || len(all.Items) != 10 {
			t.Fatalf("admin list: %d items, %v", len(all.Items), err)
		}
		byPrefix, err := p.ListMessages(ctx, root, broker.MessageQuery{Q: aIDs[2][:8]})
		if err != nil || len(byPrefix.Items) != 1 || byPrefix.Items[0].MessageID != aIDs[2] {
			t.Fatalf("q=%s: %+v, %v", aIDs[2][:8], byPrefix.Items, err)
		}
	})
}

func FuzzPortalCursor(f *testing.F) {
	f.Add("AAAAAAAAAAEAAAAAAAAAAAAAAAAAAAAA")
	f.Add("")
	f.Add("!!!")
	p := &broker.Portal{CursorKey: []byte(strings.Repeat("c", 32))}
	pr := &broker.Principal{User: &storage.User{ID: 1, Role: storage.RoleAdmin}}
	f.Fuzz(func(t *testing.T, cursor string) {
		// A nil store would panic on a query, so only cursors that fail to
		// open are sound here: a forged cursor must never open.
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("cursor %q was accepted (the list ran): %v", cursor, r)
			}
		}()
		if cursor == "" {
			return
		}
		_, err := p.ListMessages(context.Background(), pr, broker.MessageQuery{Cursor: cursor})
		if apperr.KindOf(err) != apperr.Invalid {
			t.Fatalf("cursor %q: %v", cursor, err)
		}
	})
}

func TestPortalLoginPurgesExpiredRefreshTokens(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		p := newPortal(t, db)
		ctx := context.Background()
		u := createUser(t, p, "ann@example.com", storage.RoleUser, "")
		old := &storage.RefreshToken{JTI: uuid.NewString(), TokenHash: storage.HashRefreshToken("an old token"), FamilyID: uuid.NewString(), UserID: u.ID,
			IssuedAt: time.Now().Add(-40 * 24 * time.Hour), ExpiresAt: time.Now().Add(-10 * 24 * time.Hour)}
		if err := p.Store.RefreshTokens.Insert(ctx, old); err != nil {
			t.Fatal(err)
		}
		pair := login(t, p, "ann@example.com")
		if _, err := p.Store.RefreshTokens.GetByHash(ctx, old.TokenHash); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("the expired token is still stored: %v", err)
		}
		if _, err := p.Refresh(ctx, pair.RefreshToken); err != nil {
			t.Fatalf("the purge took a live token: %v", err)
		}
	})
}

func TestPortalStoresRefreshTokensOnlyAsTheirHash(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		p := newPortal(t, db)
		ctx := context.Background()
		createUser(t, p, "ann@example.com", storage.RoleUser, "")
		pair := login(t, p, "ann@example.com")
		// Every column of every row, as text: the token must be in none.
		var rows []map[string]any
		if err := db.NewSelect().Table("refresh_tokens").Scan(ctx, &rows); err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 {
			t.Fatalf("%d refresh token rows, want 1", len(rows))
		}
		for col, v := range rows[0] {
			text := fmt.Sprintf("%s", v)
			if strings.Contains(text, pair.RefreshToken) || strings.Contains(pair.RefreshToken, text) && len(text) > 40 {
				t.Fatalf("column %s holds the token or a large piece of it: %q", col, text)
			}
		}
		row, err := p.Store.RefreshTokens.GetByHash(ctx, storage.HashRefreshToken(pair.RefreshToken))
		if err != nil {
			t.Fatalf("the token is not found by its SHA-256: %v", err)
		}
		if row.TokenHash != fmt.Sprintf("%s", rows[0]["token_hash"]) {
			t.Fatalf("token_hash = %v, want %s", rows[0]["token_hash"], row.TokenHash)
		}
	})
}

// A refresh token validly signed with the recorded jti and family, but not
// the token issued (made by someone holding the signing key, or a reissue
// of the same claims), does not spend the session's token: only the exact
// bytes issued match the stored hash.
func TestPortalRefusesARefreshTokenThatIsNotTheOneIssued(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		p := newPortal(t, db)
		ctx := context.Background()
		createUser(t, p, "ann@example.com", storage.RoleUser, "")
		pair := login(t, p, "ann@example.com")
		c, err := p.Tokens.Parse(pair.RefreshToken, tokens.Refresh)
		if err != nil {
			t.Fatal(err)
		}
		c.IssuedAt = jwt.NewNumericDate(c.IssuedAt.Add(-time.Second))
		forged := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
		forged.Header["kid"] = tokenKID(t, pair.RefreshToken)
		signed, err := forged.SignedString([]byte(strings.Repeat("k", 32)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Tokens.Parse(signed, tokens.Refresh); err != nil {
			t.Fatalf("the reissued token does not even verify, the test proves nothing: %v", err)
		}
		_, err = p.Refresh(ctx, signed)
		wantKind(t, err, apperr.Unauthenticated, "token_revoked")
		if _, err := p.Refresh(ctx, pair.RefreshToken); err != nil {
			t.Fatalf("the token really issued was spent or revoked by the other one: %v", err)
		}
	})
}

func tokenKID(t *testing.T, token string) string {
	t.Helper()
	parsed, _, err := jwt.NewParser().ParseUnverified(token, &tokens.Claims{})
	if err != nil {
		t.Fatal(err)
	}
	return parsed.Header["kid"].(string)
}

// Sessions that only ever refresh also have their expired rows purged: the
// purge rides on every issuing of tokens, not only on logins.
func TestPortalRefreshPurgesExpiredRefreshTokens(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		p := newPortal(t, db)
		now := time.Now()
		p.Now = func() time.Time { return now }
		ctx := context.Background()
		u := createUser(t, p, "ann@example.com", storage.RoleUser, "")
		pair := login(t, p, "ann@example.com") // purges once, now
		old := &storage.RefreshToken{JTI: uuid.NewString(), TokenHash: storage.HashRefreshToken("an old token"), FamilyID: uuid.NewString(),
			UserID: u.ID, IssuedAt: now.Add(-40 * 24 * time.Hour), ExpiresAt: now.Add(-10 * 24 * time.Hour)}
		if err := p.Store.RefreshTokens.Insert(ctx, old); err != nil {
			t.Fatal(err)
		}
		now = now.Add(2 * time.Hour)
		if _, err := p.Refresh(ctx, pair.RefreshToken); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Store.RefreshTokens.GetByHash(ctx, old.TokenHash); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("a refresh two hours after the last purge left the expired token: %v", err)
		}
	})
}

// The bcrypt budget refuses logins beyond its burst at once, with a
// Retry-After, before any bcrypt or query: known and unknown emails alike.
func TestPortalBcryptBudgetRefusesLoginsBeyondItsBurst(t *testing.T) {
	p := newPortal(t, storagetest.OpenSQLite(t))
	now := time.Now()
	p.Now = func() time.Time { return now } // no refill, however slow the machine
	p.Pool = broker.NewHashPool(broker.HashLimits{PerSecond: 1, Burst: 2})
	ctx := context.Background()
	createUser(t, p, "ann@example.com", storage.RoleUser, "")
	login(t, p, "ann@example.com")
	_, err := p.Login(ctx, "nobody@example.com", "whatever1", "192.0.2.10")
	wantKind(t, err, apperr.Unauthenticated, "invalid_credentials")
	for _, email := range []string{"ann@example.com", "nobody@example.com"} {
		_, err = p.Login(ctx, email, portalPassword, "192.0.2.10")
		wantKind(t, err, apperr.TooManyRequests, "login_busy")
		var lo *broker.LockedOut
		if e, _ := apperr.As(err); e == nil || !asLocked(e.Err, &lo) || lo.RetryAfterSeconds() != 1 {
			t.Fatalf("busy cause = %v, want 1 s to wait", err)
		}
	}
}
