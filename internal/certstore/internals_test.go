package certstore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/msgbroker/caddy-msgbroker/internal/certstore"
	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

func TestDefaultsAndPolling(t *testing.T) {
	db := storagetest.OpenSQLite(t)
	for ttl, want := range map[time.Duration]time.Duration{
		time.Second:      250 * time.Millisecond, // a quarter of a short lifetime
		4 * time.Second:  time.Second,
		30 * time.Second: time.Second, // FileStorage's second
		0:                time.Second, // the default lifetime, 30 s
		-time.Second:     time.Second,
	} {
		if got := certstore.PollInterval(newStore(db, ttl)); got != want {
			t.Errorf("lock lifetime %v: polls every %v, want %v", ttl, got, want)
		}
	}
	ctx := testContext(t)
	s := newStore(db, 0)
	must(t, s.Lock(ctx, "default"))
	defer func() { must(t, s.Unlock(ctx, "default")) }()
	owner, expires, err := storage.New(db).CertData.LockHolder(ctx, "default")
	must(t, err)
	if d := time.Until(expires); d < certstore.DefaultLockTTL-2*time.Second || d > certstore.DefaultLockTTL+time.Second {
		t.Errorf("a lock with the default lifetime expires in %v, want %v", d, certstore.DefaultLockTTL)
	}
	if certstore.DefaultLockTTL != 30*time.Second {
		t.Errorf("DefaultLockTTL = %v, the README says 30s", certstore.DefaultLockTTL)
	}
	host, _ := os.Hostname()
	want := fmt.Sprintf("%s/%d/", host, os.Getpid())
	if parts := strings.Split(owner, "/"); len(parts) != 4 || len(parts[2]) != 16 || len(parts[3]) != 16 || !strings.HasPrefix(owner, want) {
		t.Errorf("owner %q, want %s<process-random>/<lock-random>", owner, want)
	}
}

func TestOwnerNamesFitTheColumn(t *testing.T) {
	for _, c := range []struct{ host, want string }{
		{"", "unknown-host/7/ab"},
		{"node-1", "node-1/7/ab"},
		{strings.Repeat("ü", 100), strings.Repeat("ü", 100) + "/7/ab"},
		{strings.Repeat("ü", 101), strings.Repeat("ü", 100) + "/7/ab"},
	} {
		if got := certstore.OwnerName(c.host, 7, "ab"); got != c.want {
			t.Errorf("OwnerName(%d-character host) = %q, want %q", len([]rune(c.host)), got, c.want)
		}
	}
}

func TestInvalidKeyErrorsShowAtMost80Bytes(t *testing.T) {
	exact := strings.Repeat("k", 79) + " " // 80 bytes, invalid: ends in a space
	if err := certstore.CheckKey(exact); err == nil || !strings.Contains(err.Error(), `"`+exact+`" has a segment`) {
		t.Errorf("80-byte key: %v, want it shown whole", err)
	}
	longer := strings.Repeat("k", 80) + " "
	if err := certstore.CheckKey(longer); err == nil || !strings.Contains(err.Error(), `"`+strings.Repeat("k", 80)+`…" has a segment`) {
		t.Errorf("81-byte key: %v, want its first 80 bytes and …", err)
	}
}

// TestKeepAliveReportsFailuresAndLosses: a failed extension is logged and
// retried; a lock found taken over is logged as lost and no longer
// extended.
func TestKeepAliveReportsFailuresAndLosses(t *testing.T) {
	ctx := testContext(t)
	core, logs := observer.New(zapcore.DebugLevel)
	db, err := storage.Open(ctx, storage.Config{Driver: storage.DriverSQLite, DSN: filepath.Join(t.TempDir(), "x.db")})
	must(t, err)
	_, err = storage.Migrate(ctx, db)
	must(t, err)
	const life = 300 * time.Millisecond
	s := certstore.New(storage.New(db).CertData, certstore.Options{LockTTL: life, Logger: zap.New(core)})

	must(t, s.Lock(ctx, "taken-over"))
	if _, err := db.NewDelete().Table("certmagic_locks").Where("name = ?", "taken-over").Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, err := storage.New(db).CertData.TryLock(ctx, "taken-over", "other", time.Minute); !ok || err != nil {
		t.Fatal(ok, err)
	}
	waitForLog(t, logs, "storage lock lost: it expired and another holder may have taken it")
	if _, expires, _ := storage.New(db).CertData.LockHolder(ctx, "taken-over"); time.Until(expires) < 50*time.Second {
		t.Errorf("the lost lock's keeper shortened the new holder's lock to %v", time.Until(expires))
	}

	must(t, s.Lock(ctx, "cut-off"))
	must(t, db.Close())
	waitForLog(t, logs, "could not extend a storage lock; retrying")
	time.Sleep(life) // it retries: a second warning
	if n := logs.FilterMessage("could not extend a storage lock; retrying").Len(); n < 2 {
		t.Errorf("%d warnings after two extension periods, want the keeper to go on trying", n)
	}
	if err := s.Unlock(context.Background(), "cut-off"); err == nil {
		t.Error("Unlock on a closed database succeeded")
	}
}

func waitForLog(t *testing.T, logs *observer.ObservedLogs, msg string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for logs.FilterMessage(msg).Len() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no %q log in 5 s; logs: %v", msg, logs.All())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
