package storage_test

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

func newToken(i int, family string, userID int64) *storage.RefreshToken {
	return &storage.RefreshToken{
		JTI:       fmt.Sprintf("aaaaaaaa-0000-4000-8000-%012d", i),
		TokenHash: storage.HashRefreshToken(fmt.Sprintf("token %d", i)),
		FamilyID:  family,
		UserID:    userID,
		IssuedAt:  baseTime,
		ExpiresAt: baseTime.Add(time.Duration(i+1) * time.Hour),
	}
}

const (
	familyA = "ffffffff-0000-4000-8000-00000000000a"
	familyB = "ffffffff-0000-4000-8000-00000000000b"
)

func TestRefreshTokenRotation(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		st := storage.New(db)
		u := newUser("tokens@example.com", storage.RoleUser)
		mustNoErr(t, st.Users.Create(ctx, u), "creating user")
		tok := newToken(1, familyA, u.ID)
		mustNoErr(t, st.RefreshTokens.Insert(ctx, tok), "Insert")

		got, err := st.RefreshTokens.GetByJTI(ctx, tok.JTI)
		mustNoErr(t, err, "GetByJTI")
		if !reflect.DeepEqual(got, tok) {
			t.Errorf("GetByJTI =\n%+v\nwant\n%+v", got, tok)
		}
		got, err = st.RefreshTokens.GetByHash(ctx, tok.TokenHash)
		mustNoErr(t, err, "GetByHash")
		if !reflect.DeepEqual(got, tok) {
			t.Errorf("GetByHash =\n%+v\nwant\n%+v", got, tok)
		}

		usedAt := baseTime.Add(time.Minute)
		for i, want := range []bool{true, false} {
			used, err := st.RefreshTokens.MarkUsed(ctx, tok.TokenHash, usedAt)
			mustNoErr(t, err, "MarkUsed")
			if used != want {
				t.Fatalf("MarkUsed call %d = %v, want %v", i+1, used, want)
			}
		}
		got, err = st.RefreshTokens.GetByJTI(ctx, tok.JTI)
		mustNoErr(t, err, "GetByJTI")
		if got.UsedAt == nil || !got.UsedAt.Equal(usedAt) {
			t.Errorf("used_at = %v, want %v", got.UsedAt, usedAt)
		}

		errs := []struct {
			name string
			err  error
			want error
		}{
			{"duplicate jti conflicts", st.RefreshTokens.Insert(ctx, newToken(1, familyB, u.ID)), storage.ErrConflict},
			{"unknown jti is not found", errOf(st.RefreshTokens.GetByJTI(ctx, "bbbbbbbb-0000-4000-8000-000000000000")), storage.ErrNotFound},
			{"unknown hash is not found", errOf(st.RefreshTokens.GetByHash(ctx, storage.HashRefreshToken("never issued"))), storage.ErrNotFound},
			{"duplicate hash conflicts", st.RefreshTokens.Insert(ctx, sameHash(newToken(5, familyB, u.ID), tok)), storage.ErrConflict},
		}
		for _, tt := range errs {
			if !errors.Is(tt.err, tt.want) {
				t.Errorf("%s: got %v, want %v", tt.name, tt.err, tt.want)
			}
		}
		if err := st.RefreshTokens.Insert(ctx, shortHash(newToken(6, familyB, u.ID))); err == nil {
			t.Error("Insert with a token hash of 3 characters succeeded, want the CHECK to refuse it")
		}
		if err := st.RefreshTokens.Insert(ctx, newToken(9, familyB, 999999)); err == nil {
			t.Error("Insert for a missing user succeeded, want a foreign key error")
		}
		if used, err := st.RefreshTokens.MarkUsed(ctx, storage.HashRefreshToken("never issued"), usedAt); used || err != nil {
			t.Errorf("MarkUsed(unknown) = %v, %v; want false, nil", used, err)
		}
		// The jti alone does not spend a token: rows are found by hash.
		if used, err := st.RefreshTokens.MarkUsed(ctx, newToken(2, familyA, u.ID).JTI, usedAt); used || err != nil {
			t.Errorf("MarkUsed(a jti) = %v, %v; want false, nil", used, err)
		}
	})
}

func sameHash(t, as *storage.RefreshToken) *storage.RefreshToken {
	t.TokenHash = as.TokenHash
	return t
}

func shortHash(t *storage.RefreshToken) *storage.RefreshToken {
	t.TokenHash = "abc"
	return t
}

func TestRefreshTokenMarkUsedHasOneWinner(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		st := storage.New(db)
		u := newUser("race@example.com", storage.RoleUser)
		mustNoErr(t, st.Users.Create(ctx, u), "creating user")
		tok := newToken(1, familyA, u.ID)
		mustNoErr(t, st.RefreshTokens.Insert(ctx, tok), "Insert")

		var (
			wg   sync.WaitGroup
			wins atomic.Int32
		)
		for range 20 {
			wg.Go(func() {
				used, err := st.RefreshTokens.MarkUsed(ctx, tok.TokenHash, time.Now())
				if err != nil {
					t.Errorf("MarkUsed: %v", err)
				}
				if used {
					wins.Add(1)
				}
			})
		}
		wg.Wait()
		if n := wins.Load(); n != 1 {
			t.Errorf("%d concurrent MarkUsed calls won, want exactly 1", n)
		}
	})
}

func TestRefreshTokenRevocationAndCleanup(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		st := storage.New(db)
		alice := newUser("alice@example.com", storage.RoleUser)
		bob := newUser("bob@example.com", storage.RoleUser)
		mustNoErr(t, st.Users.Create(ctx, alice), "creating user")
		mustNoErr(t, st.Users.Create(ctx, bob), "creating user")
		tokens := []*storage.RefreshToken{
			newToken(0, familyA, alice.ID),
			newToken(1, familyA, alice.ID),
			newToken(2, familyB, alice.ID),
			newToken(3, "ffffffff-0000-4000-8000-00000000000c", bob.ID),
		}
		for _, tok := range tokens {
			mustNoErr(t, st.RefreshTokens.Insert(ctx, tok), "Insert")
		}
		revokedAt := baseTime.Add(time.Minute)

		n, err := st.RefreshTokens.RevokeFamily(ctx, familyA, revokedAt)
		mustNoErr(t, err, "RevokeFamily")
		if n != 2 {
			t.Errorf("RevokeFamily revoked %d, want 2", n)
		}
		if used, err := st.RefreshTokens.MarkUsed(ctx, tokens[1].TokenHash, revokedAt); used || err != nil {
			t.Errorf("MarkUsed on a revoked token = %v, %v; want false, nil", used, err)
		}
		n, err = st.RefreshTokens.RevokeAllForUser(ctx, alice.ID, revokedAt.Add(time.Minute))
		mustNoErr(t, err, "RevokeAllForUser")
		if n != 1 {
			t.Errorf("RevokeAllForUser revoked %d, want only the one not yet revoked", n)
		}
		first, err := st.RefreshTokens.GetByJTI(ctx, tokens[0].JTI)
		mustNoErr(t, err, "GetByJTI")
		if first.RevokedAt == nil || !first.RevokedAt.Equal(revokedAt) {
			t.Errorf("revoked_at = %v, want the first revocation %v", first.RevokedAt, revokedAt)
		}
		bobs, err := st.RefreshTokens.GetByJTI(ctx, tokens[3].JTI)
		mustNoErr(t, err, "GetByJTI")
		if bobs.RevokedAt != nil {
			t.Error("revoking alice's tokens revoked bob's")
		}

		// Tokens expire 1h, 2h, 3h and 4h after baseTime.
		n, err = st.RefreshTokens.DeleteExpired(ctx, baseTime.Add(2*time.Hour+time.Second))
		mustNoErr(t, err, "DeleteExpired")
		if n != 2 {
			t.Errorf("DeleteExpired removed %d, want 2", n)
		}
		for i, tok := range tokens {
			_, err := st.RefreshTokens.GetByJTI(ctx, tok.JTI)
			if gone := errors.Is(err, storage.ErrNotFound); gone != (i < 2) {
				t.Errorf("token %d: lookup after DeleteExpired = %v", i, err)
			}
		}
	})
}
