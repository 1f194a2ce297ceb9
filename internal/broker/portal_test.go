package broker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

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
	return &broker.Portal{Store: store, Tokens: tm, Users: users, CursorKey: []byte(strings.Repeat("c", 32)),
		Limits: broker.LoginLimits{MaxFailures: 3, AddressMaxFailures: 100, Lockout: time.Minute}}
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
		_, err := p.Login(ctx, "ann@example.com", portalPassword, "192.0.2.10")
		wantKind(t, err, apperr.TooManyRequests, "login_locked")
		var lo *broker.LockedOut
		if e, _ := apperr.As(err); e == nil || !asLocked(e.Err, &lo) || lo.RetryAfterSeconds() != 60 {
			t.Fatalf("lockout cause = %v, want 60 s to wait", err)
		}
		now = now.Add(61 * time.Second)
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

func TestPortalUnknownEmailCostsAsMuchAsAWrongPassword(t *testing.T) {
	p := newPortal(t, storagetest.OpenSQLite(t))
	p.Users.BcryptCost = 10
	p.Limits.AddressMaxFailures = -1
	p.Limits.MaxFailures = -1
	ctx := context.Background()
	createUser(t, p, "ann@example.com", storage.RoleUser, "")
	timeIt := func(email string) time.Duration {
		start := time.Now()
		for range 5 {
			if _, err := p.Login(ctx, email, "not the password", "192.0.2.1"); apperr.KindOf(err) != apperr.Unauthenticated {
				t.Fatal(err)
			}
		}
		return time.Since(start)
	}
	timeIt("warm@example.com")
	known, unknown := timeIt("ann@example.com"), timeIt("nobody@example.com")
	if unknown < known/2 {
		t.Fatalf("5 unknown-email logins took %s, 5 wrong passwords %s: timing reveals accounts", unknown, known)
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
		old := &storage.RefreshToken{JTI: uuid.NewString(), FamilyID: uuid.NewString(), UserID: u.ID,
			IssuedAt: time.Now().Add(-40 * 24 * time.Hour), ExpiresAt: time.Now().Add(-10 * 24 * time.Hour)}
		if err := p.Store.RefreshTokens.Insert(ctx, old); err != nil {
			t.Fatal(err)
		}
		pair := login(t, p, "ann@example.com")
		if _, err := p.Store.RefreshTokens.GetByJTI(ctx, old.JTI); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("the expired token is still stored: %v", err)
		}
		if _, err := p.Refresh(ctx, pair.RefreshToken); err != nil {
			t.Fatalf("the purge took a live token: %v", err)
		}
	})
}
