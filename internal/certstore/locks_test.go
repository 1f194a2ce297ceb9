package certstore_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

// Each Store stands for one gateway node: it has its own owner identity
// and its own leases, and shares only the database with the others.

func TestALockExcludesOtherNodesUntilReleased(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		a, b := newStore(db, 2*time.Second), newStore(db, 2*time.Second)
		must(t, a.Lock(ctx, "issue_cert_example.com"))
		if ok, err := b.TryLock(ctx, "issue_cert_example.com"); ok || err != nil {
			t.Fatalf("TryLock on a held lock = %v, %v, want false", ok, err)
		}
		if ok, err := a.TryLock(ctx, "issue_cert_example.com"); ok || err != nil {
			t.Fatalf("TryLock by the same node on its held lock = %v, %v, want false", ok, err)
		}
		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		if err := b.Lock(short, "issue_cert_example.com"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Lock on a held lock until the context ends = %v, want DeadlineExceeded", err)
		}
		if ok, err := b.TryLock(ctx, "issue_cert_other.com"); !ok || err != nil {
			t.Fatalf("TryLock of another name = %v, %v, want true", ok, err)
		}

		got := make(chan error, 1)
		go func() { got <- b.Lock(ctx, "issue_cert_example.com") }()
		select {
		case err := <-got:
			t.Fatalf("Lock returned %v while the lock was held", err)
		case <-time.After(200 * time.Millisecond):
		}
		must(t, a.Unlock(ctx, "issue_cert_example.com"))
		select {
		case err := <-got:
			must(t, err)
		case <-time.After(5 * time.Second):
			t.Fatal("Lock did not return within 5 s of the release")
		}
		must(t, b.Unlock(ctx, "issue_cert_example.com"))
		must(t, b.Unlock(ctx, "issue_cert_other.com"))
	})
}

// TestConcurrentLockersNeverOverlap: three nodes with four goroutines each
// take one lock 24 times; no two are ever inside at once.
func TestConcurrentLockersNeverOverlap(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		var inside, entered atomic.Int32
		var wg sync.WaitGroup
		for range 3 {
			node := newStore(db, 400*time.Millisecond)
			for range 4 {
				wg.Go(func() {
					for range 2 {
						if err := node.Lock(ctx, "storage_clean"); err != nil {
							t.Error(err)
							return
						}
						if inside.Add(1) != 1 {
							t.Error("two holders inside the lock at once")
						}
						entered.Add(1)
						time.Sleep(2 * time.Millisecond)
						inside.Add(-1)
						if err := node.Unlock(ctx, "storage_clean"); err != nil {
							t.Error(err)
						}
					}
				})
			}
		}
		wg.Wait()
		if entered.Load() != 24 {
			t.Errorf("%d entries, want 24", entered.Load())
		}
	})
}

// TestALockOfADeadNodeExpires: a holder that stops extending its lock
// (a node that died) loses it after the lock's lifetime, not before.
func TestALockOfADeadNodeExpires(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		repo := storage.New(db).CertData
		const life = 1500 * time.Millisecond
		ok, err := repo.TryLock(ctx, "issue_cert_dead.example", "dead-node", life)
		if !ok || err != nil {
			t.Fatalf("taking the lock for the dead node: %v, %v", ok, err)
		}
		taken := time.Now()
		b := newStore(db, time.Second)
		if ok, err := b.TryLock(ctx, "issue_cert_dead.example"); ok || err != nil {
			t.Fatalf("TryLock before expiry = %v, %v, want false", ok, err)
		}
		must(t, b.Lock(ctx, "issue_cert_dead.example"))
		if waited := time.Since(taken); waited < life-100*time.Millisecond || waited > life+2*time.Second {
			t.Errorf("took the dead node's lock after %v, want just after its %v lifetime", waited, life)
		}
		owner, _, err := repo.LockHolder(ctx, "issue_cert_dead.example")
		if err != nil || owner == "dead-node" {
			t.Errorf("holder after the takeover = %q, %v", owner, err)
		}
		must(t, b.Unlock(ctx, "issue_cert_dead.example"))
		if _, _, err := repo.LockHolder(ctx, "issue_cert_dead.example"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("lock row after Unlock: %v, want none", err)
		}
	})
}

// TestAHeldLockOutlivesItsLifetime: the holder extends its lock while it
// works, so a lock held for three lifetimes is still held.
func TestAHeldLockOutlivesItsLifetime(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		// A second: the keeper extends every third of it, so a loaded CI
		// machine would have to stall it for a whole second to fail this.
		const life = time.Second
		a, b := newStore(db, life), newStore(db, life)
		must(t, a.Lock(ctx, "long_job"))
		for range 3 {
			time.Sleep(life)
			if ok, err := b.TryLock(ctx, "long_job"); ok || err != nil {
				t.Fatalf("another node took a lock its holder keeps alive: %v, %v", ok, err)
			}
		}
		must(t, a.Unlock(ctx, "long_job"))
		if ok, err := b.TryLock(ctx, "long_job"); !ok || err != nil {
			t.Fatalf("TryLock after the release = %v, %v, want true", ok, err)
		}
		must(t, b.Unlock(ctx, "long_job"))
	})
}

func TestUnlockNeedsTheLockHeldHere(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		a, b := newStore(db, time.Second), newStore(db, time.Second)
		wantCode(t, a.Unlock(ctx, "never_taken"), "storage_lock_not_held")
		must(t, a.Lock(ctx, "x"))
		wantCode(t, b.Unlock(ctx, "x"), "storage_lock_not_held")
		must(t, a.Unlock(ctx, "x"))
		wantCode(t, a.Unlock(ctx, "x"), "storage_lock_not_held")
		wantCode(t, a.RenewLockLease(ctx, "x", time.Minute), "storage_lock_not_held")
	})
}

// TestUnlockAfterATakeoverLeavesTheNewHolderAlone: a node whose lock
// expired and was taken must not release the new holder's lock.
func TestUnlockAfterATakeoverLeavesTheNewHolderAlone(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		repo := storage.New(db).CertData
		a := newStore(db, time.Minute)
		must(t, a.Lock(ctx, "x"))
		if _, err := db.NewDelete().Table("certmagic_locks").Where("name = ?", "x").Exec(ctx); err != nil {
			t.Fatal(err) // as if it had expired and been cleared
		}
		if ok, err := repo.TryLock(ctx, "x", "other-node", time.Minute); !ok || err != nil {
			t.Fatalf("other node's TryLock = %v, %v", ok, err)
		}
		wantCode(t, a.RenewLockLease(ctx, "x", time.Hour), "storage_lock_lost")
		wantCode(t, a.Unlock(ctx, "x"), "storage_lock_lost")
		owner, _, err := repo.LockHolder(ctx, "x")
		if err != nil || owner != "other-node" {
			t.Errorf("holder after the old holder's Unlock = %q, %v, want other-node", owner, err)
		}
	})
}

// TestRenewLockLeaseIsNotUndoneByTheRegularExtensions: certmagic asks for
// a long lease before a long ACME order; the holder's own extensions,
// every third of the (shorter) lifetime, must not shorten it again.
func TestRenewLockLeaseIsNotUndoneByTheRegularExtensions(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		repo := storage.New(db).CertData
		const life = 300 * time.Millisecond
		a := newStore(db, life)
		must(t, a.Lock(ctx, "order"))
		_, first, err := repo.LockHolder(ctx, "order")
		must(t, err)
		if d := time.Until(first); d > life+time.Second || d < -time.Second {
			t.Errorf("a new lock expires in %v, want about its %v lifetime", d, life)
		}
		must(t, a.RenewLockLease(ctx, "order", time.Hour))
		time.Sleep(3 * life) // several regular extensions
		_, renewed, err := repo.LockHolder(ctx, "order")
		must(t, err)
		if d := time.Until(renewed); d < 59*time.Minute || d > 61*time.Minute {
			t.Errorf("after RenewLockLease(1h) and extensions the lock expires in %v, want about an hour", d)
		}
		must(t, a.Unlock(ctx, "order"))
	})
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if e, ok := apperr.As(err); !ok || e.Code != code {
		t.Errorf("error = %v, want %s", err, code)
	}
}
