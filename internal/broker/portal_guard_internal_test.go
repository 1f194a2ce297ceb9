package broker

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/msgbroker/caddy-msgbroker/internal/tokens"
	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

func TestTokenBucketRefillsAtItsRateUpToItsBurst(t *testing.T) {
	b := newTokenBucket(2, 3)
	t0 := time.Unix(1_000_000, 0)
	steps := []struct {
		at   time.Duration
		ok   bool
		wait time.Duration
	}{
		{0, true, 0}, {0, true, 0}, {0, true, 0}, // the burst
		{0, false, 500 * time.Millisecond},
		{250 * time.Millisecond, false, 250 * time.Millisecond},
		{500 * time.Millisecond, true, 0},
		{500 * time.Millisecond, false, 500 * time.Millisecond},
		{time.Hour, true, 0}, {time.Hour, true, 0}, {time.Hour, true, 0}, // refilled to the burst, not beyond
		{time.Hour, false, 500 * time.Millisecond},
		// A clock that steps back neither refills nor breaks the bucket.
		{time.Hour - time.Minute, false, 500 * time.Millisecond},
	}
	for i, s := range steps {
		wait, ok := b.take(t0.Add(s.at))
		if ok != s.ok || wait != s.wait {
			t.Fatalf("step %d at +%s: take = %s, %v; want %s, %v", i, s.at, wait, ok, s.wait, s.ok)
		}
	}
}

// TestUnknownEmailWaitsForABcryptOfTheSameCost: an unknown email is
// compared against a hash of the users' cost on the same workers, so it
// takes as long as a wrong password and timing does not tell which
// addresses have accounts. With the only worker held, such a login must
// wait for it; one that skipped the comparison would answer at once.
func TestUnknownEmailWaitsForABcryptOfTheSameCost(t *testing.T) {
	store := storage.New(storagetest.OpenSQLite(t))
	tm, err := tokens.New(tokens.Config{Signing: tokens.HMACKey([]byte(strings.Repeat("k", 32)))})
	if err != nil {
		t.Fatal(err)
	}
	p := &Portal{Store: store, Tokens: tm, Users: &Users{Store: store, BcryptCost: bcrypt.MinCost + 2},
		CursorKey: []byte(strings.Repeat("c", 32)), Pool: NewHashPool(HashLimits{Workers: 1, PerSecond: -1})}
	p.init()
	if cost, err := bcrypt.Cost([]byte(p.dummyHash)); err != nil || cost != bcrypt.MinCost+2 {
		t.Fatalf("the hash an unknown email is compared against has cost %d (%v), want the users' %d", cost, err, bcrypt.MinCost+2)
	}
	ctx := context.Background()
	held, release := make(chan struct{}), make(chan struct{})
	go func() { _ = p.Pool.do(ctx, func() { close(held); <-release }) }()
	<-held
	done := make(chan error, 1)
	go func() { _, err := p.Login(ctx, "nobody@example.com", "not the password", "192.0.2.1"); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("an unknown email was answered (%v) without waiting for bcrypt", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if err := <-done; !errors.Is(err, errBadCredentials) {
		t.Fatalf("unknown email = %v, want 401 invalid_credentials", err)
	}
}
