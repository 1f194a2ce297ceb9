package storage_test

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

func newUser(email, role string) *storage.User {
	return &storage.User{Email: email, PasswordHash: "$2a$12$hash-of-" + email, Role: role, IsActive: true}
}

func TestUserCreateAndLookup(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		repo := storage.New(db).Users

		admin := newUser("  Admin@Example.COM ", storage.RoleAdmin)
		mustNoErr(t, repo.Create(ctx, admin), "Create")
		if admin.ID == 0 || admin.Email != "admin@example.com" {
			t.Fatalf("Create left id %d, email %q; want an id and the lowercased email", admin.ID, admin.Email)
		}
		user := &storage.User{Email: "user@example.com", PasswordHash: "h", ClientID: ptr("proxy-a"), IsActive: true}
		mustNoErr(t, repo.Create(ctx, user), "Create")
		if user.Role != storage.RoleUser {
			t.Errorf("default role = %q, want %q", user.Role, storage.RoleUser)
		}

		byEmail, err := repo.GetByEmail(ctx, "ADMIN@example.com")
		mustNoErr(t, err, "GetByEmail")
		if !reflect.DeepEqual(byEmail, admin) {
			t.Errorf("GetByEmail =\n%+v\nwant\n%+v", byEmail, admin)
		}
		byID, err := repo.GetByID(ctx, user.ID)
		mustNoErr(t, err, "GetByID")
		if !reflect.DeepEqual(byID, user) {
			t.Errorf("GetByID =\n%+v\nwant\n%+v", byID, user)
		}

		list, err := repo.List(ctx)
		mustNoErr(t, err, "List")
		if len(list) != 2 || list[0].ID != admin.ID || list[1].ID != user.ID {
			t.Errorf("List = %+v, want admin then user", list)
		}
		roles, err := repo.CountByRole(ctx)
		mustNoErr(t, err, "CountByRole")
		if want := map[string]int64{storage.RoleAdmin: 1, storage.RoleUser: 1}; !maps.Equal(roles, want) {
			t.Errorf("CountByRole = %v, want %v", roles, want)
		}
	})
}

func TestUserErrors(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		repo := storage.New(db).Users
		first := newUser("first@example.com", storage.RoleUser)
		second := newUser("second@example.com", storage.RoleUser)
		mustNoErr(t, repo.Create(ctx, first), "Create")
		mustNoErr(t, repo.Create(ctx, second), "Create")

		taken := *second
		taken.Email = "FIRST@example.com"
		missing := *second
		missing.ID = 999999

		tests := []struct {
			name string
			err  error
			want error
		}{
			{"duplicate email in another case conflicts", repo.Create(ctx, newUser("First@Example.com", storage.RoleUser)), storage.ErrConflict},
			{"update to a taken email conflicts", repo.Update(ctx, &taken), storage.ErrConflict},
			{"update of a missing user is not found", repo.Update(ctx, &missing), storage.ErrNotFound},
			{"unknown id is not found", errOf(repo.GetByID(ctx, 999999)), storage.ErrNotFound},
			{"unknown email is not found", errOf(repo.GetByEmail(ctx, "nobody@example.com")), storage.ErrNotFound},
			{"deleting a missing user is not found", repo.Delete(ctx, 999999), storage.ErrNotFound},
			{"login failure of a missing user is not found", errOf(repo.RecordLoginFailure(ctx, 999999, 3, time.Minute, baseTime)), storage.ErrNotFound},
			{"login reset of a missing user is not found", repo.ResetLoginFailures(ctx, 999999, baseTime), storage.ErrNotFound},
			{"locking a missing user is not found", repo.LockUntil(ctx, 999999, baseTime), storage.ErrNotFound},
		}
		for _, tt := range tests {
			if !errors.Is(tt.err, tt.want) {
				t.Errorf("%s: got %v, want %v", tt.name, tt.err, tt.want)
			}
		}
	})
}

func TestUserUpdateAndDelete(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		st := storage.New(db)
		u := newUser("old@example.com", storage.RoleUser)
		mustNoErr(t, st.Users.Create(ctx, u), "Create")

		u.Email = "New@Example.com"
		u.Role = storage.RoleAdmin
		u.ClientID = ptr("proxy-b")
		u.IsActive = false
		u.PasswordHash = "new-hash"
		u.PasswordChangedAt = baseTime
		mustNoErr(t, st.Users.Update(ctx, u), "Update")
		got, err := st.Users.GetByID(ctx, u.ID)
		mustNoErr(t, err, "GetByID")
		if !reflect.DeepEqual(got, u) || got.Email != "new@example.com" {
			t.Errorf("after Update got\n%+v\nwant\n%+v", got, u)
		}

		u.ClientID = nil
		mustNoErr(t, st.Users.Update(ctx, u), "Update clearing client id")
		got, err = st.Users.GetByID(ctx, u.ID)
		mustNoErr(t, err, "GetByID")
		if got.ClientID != nil {
			t.Errorf("client id = %q after clearing it", *got.ClientID)
		}

		tok := &storage.RefreshToken{JTI: "aaaaaaaa-0000-4000-8000-000000000001", TokenHash: storage.HashRefreshToken("a token"), FamilyID: "ffffffff-0000-4000-8000-000000000001", UserID: u.ID, ExpiresAt: baseTime.Add(time.Hour)}
		mustNoErr(t, st.RefreshTokens.Insert(ctx, tok), "inserting refresh token")
		mustNoErr(t, st.Users.Delete(ctx, u.ID), "Delete")
		if _, err := st.Users.GetByID(ctx, u.ID); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("GetByID after Delete: %v, want ErrNotFound", err)
		}
		if _, err := st.RefreshTokens.GetByJTI(ctx, tok.JTI); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("refresh token after deleting its user: %v, want ErrNotFound (cascade)", err)
		}
	})
}

func TestUserLoginFailuresLockTheAccount(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		repo := storage.New(db).Users
		u := newUser("locked@example.com", storage.RoleUser)
		mustNoErr(t, repo.Create(ctx, u), "Create")
		const maxFailures = 3
		lockout := 15 * time.Minute

		steps := []struct {
			at       time.Time
			failures int
			locked   bool
		}{
			{baseTime, 1, false},
			{baseTime.Add(time.Second), 2, false},
			{baseTime.Add(2 * time.Second), 0, true},
			// After the lockout, the count starts afresh.
			{baseTime.Add(2*time.Second + lockout), 1, false},
		}
		for i, step := range steps {
			got, err := repo.RecordLoginFailure(ctx, u.ID, maxFailures, lockout, step.at)
			mustNoErr(t, err, "RecordLoginFailure")
			if got.FailedLogins != step.failures || got.LockedAt(step.at) != step.locked {
				t.Fatalf("failure %d: failed_logins %d, locked %v (until %v); want %d, %v",
					i+1, got.FailedLogins, got.LockedAt(step.at), got.LockedUntil, step.failures, step.locked)
			}
			if step.locked && !got.LockedUntil.Equal(step.at.Add(lockout)) {
				t.Fatalf("locked until %v, want %v", got.LockedUntil, step.at.Add(lockout))
			}
		}

		loginAt := baseTime.Add(time.Hour)
		mustNoErr(t, repo.ResetLoginFailures(ctx, u.ID, loginAt), "ResetLoginFailures")
		got, err := repo.GetByID(ctx, u.ID)
		mustNoErr(t, err, "GetByID")
		if got.FailedLogins != 0 || got.LockedUntil != nil || got.LastLoginAt == nil || !got.LastLoginAt.Equal(loginAt) {
			t.Errorf("after reset: failed_logins %d, locked_until %v, last_login_at %v", got.FailedLogins, got.LockedUntil, got.LastLoginAt)
		}

		until := baseTime.Add(48 * time.Hour)
		mustNoErr(t, repo.LockUntil(ctx, u.ID, until), "LockUntil")
		got, err = repo.GetByID(ctx, u.ID)
		mustNoErr(t, err, "GetByID")
		if !got.LockedAt(until.Add(-time.Second)) || got.LockedAt(until) {
			t.Errorf("locked until %v, want %v", got.LockedUntil, until)
		}
		mustNoErr(t, repo.LockUntil(ctx, u.ID, time.Time{}), "unlocking")
		got, err = repo.GetByID(ctx, u.ID)
		mustNoErr(t, err, "GetByID")
		if got.LockedUntil != nil {
			t.Errorf("still locked until %v after unlocking", got.LockedUntil)
		}

		for range 5 {
			got, err = repo.RecordLoginFailure(ctx, u.ID, 0, lockout, baseTime)
			mustNoErr(t, err, "RecordLoginFailure without lockout")
		}
		if got.FailedLogins != 5 || got.LockedUntil != nil {
			t.Errorf("without lockout: failed_logins %d, locked_until %v; want 5 and never locked", got.FailedLogins, got.LockedUntil)
		}
	})
}

// TestConcurrentDeletionsKeepOneAdmin deletes the only two admins at the
// same time, many times over: exactly one deletion may succeed each round.
func TestConcurrentDeletionsKeepOneAdmin(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		repo := storage.New(db).Users
		for round := range 10 {
			var ids [2]int64
			for i := range ids {
				u := &storage.User{Email: fmt.Sprintf("admin-%d-%d@example.com", round, i), PasswordHash: "x",
					Role: storage.RoleAdmin, IsActive: true}
				if err := repo.Create(ctx, u); err != nil {
					t.Fatal(err)
				}
				ids[i] = u.ID
			}
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i := range ids {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs[i] = repo.DeleteUnlessLastAdmin(ctx, ids[i])
				}()
			}
			wg.Wait()
			deleted := 0
			for _, err := range errs {
				switch {
				case err == nil:
					deleted++
				case !errors.Is(err, storage.ErrLastAdmin):
					t.Fatalf("round %d: %v", round, err)
				}
			}
			if deleted != 1 {
				t.Fatalf("round %d: %d of the two last admins deleted", round, deleted)
			}
			counts, _ := repo.CountByRole(ctx)
			if counts[storage.RoleAdmin] != 1 {
				t.Fatalf("round %d: %d admins left", round, counts[storage.RoleAdmin])
			}
			// Demote the survivor so the next round starts with no admin.
			for i, err := range errs {
				if errors.Is(err, storage.ErrLastAdmin) {
					u, _ := repo.GetByID(ctx, ids[i])
					u.Role = storage.RoleUser
					if err := repo.Update(ctx, u); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	})
}
