package storage_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

// TestConcurrentDemotionsKeepOneAdmin demotes or deactivates the only two
// admins at the same time, many times over: exactly one change may succeed
// each round.
func TestConcurrentDemotionsKeepOneAdmin(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		repo := storage.New(db).Users
		for round := range 10 {
			var users [2]*storage.User
			for i := range users {
				users[i] = &storage.User{Email: fmt.Sprintf("admin-%d-%d@example.com", round, i), PasswordHash: "x",
					Role: storage.RoleAdmin, IsActive: true}
				if err := repo.Create(ctx, users[i]); err != nil {
					t.Fatal(err)
				}
			}
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i, u := range users {
				if round%2 == 0 {
					u.Role = storage.RoleUser
				} else {
					u.IsActive = false
				}
				wg.Go(func() { errs[i] = repo.UpdateUnlessLastAdmin(ctx, u) })
			}
			wg.Wait()
			changed := 0
			for _, err := range errs {
				switch {
				case err == nil:
					changed++
				case !errors.Is(err, storage.ErrLastAdmin):
					t.Fatalf("round %d: %v", round, err)
				}
			}
			if changed != 1 {
				t.Fatalf("round %d: %d of the two last admins demoted", round, changed)
			}
			// Retire the survivor so the next round starts with no admin.
			for i, err := range errs {
				if errors.Is(err, storage.ErrLastAdmin) {
					u, _ := repo.GetByID(ctx, users[i].ID)
					u.Role = storage.RoleUser
					if err := repo.Update(ctx, u); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	})
}

func TestClientListPage(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		repo := storage.New(db).Clients
		now := baseTime.Add(24 * time.Hour)
		var ids []int64
		for i := range 6 {
			c := newClient(i+1, fmt.Sprintf("c-%d", i%2), storage.ClientRoleProxy)
			c.NotAfter = now.Add(time.Duration(i-1) * 24 * time.Hour) // c0 expired yesterday
			mustNoErr(t, repo.Insert(ctx, c), "Insert")
			ids = append(ids, c.ID)
		}
		mustNoErr(t, repo.Revoke(ctx, newClient(2, "", "").SerialNumber, "superseded", now), "Revoke")
		list := func(f storage.ClientPageFilter) []int64 {
			f.Now = now
			rows, err := repo.ListPage(ctx, f)
			mustNoErr(t, err, "ListPage")
			var got []int64
			for _, r := range rows {
				got = append(got, r.ID)
			}
			return got
		}
		cases := []struct {
			name string
			f    storage.ClientPageFilter
			want []int64
		}{
			{"all", storage.ClientPageFilter{}, []int64{ids[5], ids[4], ids[3], ids[2], ids[1], ids[0]}},
			{"page", storage.ClientPageFilter{BeforeID: ids[4], Limit: 2}, []int64{ids[3], ids[2]}},
			{"active", storage.ClientPageFilter{State: storage.ClientStateActive}, []int64{ids[5], ids[4], ids[3], ids[2]}},
			{"expired", storage.ClientPageFilter{State: storage.ClientStateExpired}, []int64{ids[0]}},
			{"revoked", storage.ClientPageFilter{State: storage.ClientStateRevoked}, []int64{ids[1]}},
			{"client", storage.ClientPageFilter{ClientID: "c-1"}, []int64{ids[5], ids[3], ids[1]}},
			{"expiring within 2 days", storage.ClientPageFilter{ExpiresBefore: now.Add(48 * time.Hour)}, []int64{ids[2]}},
		}
		for _, tc := range cases {
			if got := list(tc.f); !slices.Equal(got, tc.want) {
				t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
			}
		}
	})
}
