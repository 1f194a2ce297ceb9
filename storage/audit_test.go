package storage_test

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

func TestAuditInsertAndListNewestFirst(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		repo := storage.New(db).Audit
		actors := []string{"alice@example.com", "bob@example.com"}
		actions := []string{"user.create", "cert.revoke", "message.decrypt"}
		var all []*storage.AuditEntry
		for i := range 23 {
			e := &storage.AuditEntry{
				CreatedAt:  baseTime.Add(time.Duration(i) * time.Second),
				Actor:      actors[i%len(actors)],
				Action:     actions[i%len(actions)],
				Target:     "target",
				Outcome:    storage.AuditSuccess,
				RemoteAddr: "192.0.2.1:4711",
			}
			if i == 0 {
				e.Details = ptr(`{"reason":"test"}`)
				e.CreatedAt = time.Time{}
			}
			mustNoErr(t, repo.Insert(ctx, e), "Insert")
			all = append(all, e)
		}
		if all[0].CreatedAt.IsZero() || time.Since(all[0].CreatedAt).Abs() > time.Minute {
			t.Errorf("default created_at = %v, want now", all[0].CreatedAt)
		}

		tests := []struct {
			name   string
			filter storage.AuditFilter
			match  func(*storage.AuditEntry) bool
		}{
			{"all", storage.AuditFilter{}, func(*storage.AuditEntry) bool { return true }},
			{"actor", storage.AuditFilter{Actor: actors[1]}, func(e *storage.AuditEntry) bool { return e.Actor == actors[1] }},
			{"action", storage.AuditFilter{Action: actions[2]}, func(e *storage.AuditEntry) bool { return e.Action == actions[2] }},
			{"actor and action", storage.AuditFilter{Actor: actors[0], Action: actions[0]},
				func(e *storage.AuditEntry) bool { return e.Actor == actors[0] && e.Action == actions[0] }},
		}
		for _, tt := range tests {
			var want []int64
			for _, e := range slices.Backward(all) {
				if tt.match(e) {
					want = append(want, e.ID)
				}
			}
			var got []int64
			f := tt.filter
			f.Limit = 4
			for {
				page, err := repo.List(ctx, f)
				mustNoErr(t, err, "List")
				for _, e := range page {
					got = append(got, e.ID)
				}
				if len(page) < f.Limit {
					break
				}
				f.BeforeID = page[len(page)-1].ID
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: paged ids %v, want %v", tt.name, got, want)
			}
		}

		page, err := repo.List(ctx, storage.AuditFilter{BeforeID: all[1].ID})
		mustNoErr(t, err, "List")
		if len(page) != 1 || !reflect.DeepEqual(&page[0], all[0]) {
			t.Errorf("oldest entry = %+v, want %+v", page, all[0])
		}
	})
}
