package storage_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/uptrace/bun"

	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

// TestBatcherStoresEveryRowAndReportsConflictsToTheirCallers races many
// inserts, some repeating an earlier message id, through one batcher: every
// new row is stored exactly once, and only the repeats get ErrConflict.
func TestBatcherStoresEveryRowAndReportsConflictsToTheirCallers(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		repo := storage.New(db).Messages
		if err := repo.Insert(ctx, newMessage(0, "proxy-a", "")); err != nil {
			t.Fatal(err)
		}
		b := storage.NewMessageBatcher(repo, 8, 2)
		defer b.Stop()

		const n = 200
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// every tenth insert repeats message 0
				id := i + 1
				if i%10 == 0 {
					id = 0
				}
				errs[i] = b.Insert(ctx, newMessage(id, "proxy-a", ""))
			}()
		}
		wg.Wait()
		for i, err := range errs {
			wantConflict := i%10 == 0
			if gotConflict := errors.Is(err, storage.ErrConflict); gotConflict != wantConflict || (!wantConflict && err != nil) {
				t.Errorf("insert %d: %v (want conflict: %t)", i, err, wantConflict)
			}
		}
		total, err := repo.Total(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := int64(1 + n - n/10); total != want {
			t.Fatalf("%d rows stored, want %d", total, want)
		}
	})
}

func TestBatcherInsertsDirectlyAfterStop(t *testing.T) {
	db := storagetest.OpenSQLite(t)
	repo := storage.New(db).Messages
	b := storage.NewMessageBatcher(repo, 0, 0)
	b.Stop()
	if err := b.Insert(testContext(t), newMessage(1, "proxy-a", "")); err != nil {
		t.Fatalf("insert after stop: %v", err)
	}
	if _, err := repo.GetByMessageID(testContext(t), newMessage(1, "", "").MessageID); err != nil {
		t.Fatalf("row not stored: %v", err)
	}
}

// TestBatcherIsolatesARowTheDatabaseRefuses sends one row that breaks a
// CHECK constraint among good ones: only its caller sees the error.
func TestBatcherIsolatesARowTheDatabaseRefuses(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		repo := storage.New(db).Messages
		b := storage.NewMessageBatcher(repo, 16, 1)
		defer b.Stop()
		const n = 60
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				status := ""
				if i == 7 {
					status = "bogus"
				}
				errs[i] = b.Insert(ctx, newMessage(i+1, "proxy-a", status))
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if (i == 7) != (err != nil) {
				t.Errorf("insert %d: %v", i, err)
			}
		}
		if total, _ := repo.Total(ctx); total != n-1 {
			t.Fatalf("%d rows stored, want %d", total, n-1)
		}
	})
}
