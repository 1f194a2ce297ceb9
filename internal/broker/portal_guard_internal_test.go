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
		CursorKey: []byte(strings.Repeat("c", 32)), Pool: NewHashPool(HashLimits{Workers: 1, PerSecond: -1}),
		// No failure delay: it would hold the answer as long as the
		// worker does and hide a skipped comparison.
		Limits: LoginLimits{FailureDelay: -1}}
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

// delayPortal is a portal whose failure delay is recorded instead of
// waited for: waits receives each wait it asks for.
func delayPortal(t *testing.T, limits LoginLimits, hashes HashLimits) (*Portal, *[]time.Duration) {
	t.Helper()
	store := storage.New(storagetest.OpenSQLite(t))
	tm, err := tokens.New(tokens.Config{Signing: tokens.HMACKey([]byte(strings.Repeat("k", 32)))})
	if err != nil {
		t.Fatal(err)
	}
	users := &Users{Store: store, BcryptCost: bcrypt.MinCost}
	p := &Portal{Store: store, Tokens: tm, Users: users, CursorKey: []byte(strings.Repeat("c", 32)),
		Pool: NewHashPool(hashes), Limits: limits}
	waits := new([]time.Duration)
	p.wait = func(_ context.Context, d time.Duration) { *waits = append(*waits, d) }
	if _, err := users.Create(context.Background(), Actor{Name: "test"}, NewUser{Email: "ann@example.com", Password: "the right password", Role: "user"}); err != nil {
		t.Fatal(err)
	}
	return p, waits
}

// Every login that does not succeed is held until the failure delay has
// passed since it arrived (the default one second when none is set); a
// successful one is not.
func TestFailedLoginsAreHeldForTheFailureDelay(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		limits LoginLimits
		delay  time.Duration
	}{
		{"default", LoginLimits{}, DefaultFailureDelay},
		{"configured", LoginLimits{FailureDelay: 300 * time.Millisecond}, 300 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, waits := delayPortal(t, tc.limits, HashLimits{PerSecond: -1})
			if _, err := p.Login(ctx, "ann@example.com", "the right password", "192.0.2.1"); err != nil {
				t.Fatal(err)
			}
			if len(*waits) != 0 {
				t.Fatalf("a successful login was held: %v", *waits)
			}
			for _, email := range []string{"ann@example.com", "nobody@example.com"} {
				before := len(*waits)
				if _, err := p.Login(ctx, email, "a wrong password", "192.0.2.1"); !errors.Is(err, errBadCredentials) {
					t.Fatalf("%s: %v", email, err)
				}
				if len(*waits) != before+1 {
					t.Fatalf("%s: a failed login was not held (waits %v)", email, *waits)
				}
				// The wait is what is left of the delay: less than all of
				// it (the bcrypt took some), and not much less.
				if w := (*waits)[before]; w <= 0 || w >= tc.delay || w < tc.delay-tc.delay/2 {
					t.Fatalf("%s: held %v, want a little under %v", email, w, tc.delay)
				}
			}
		})
	}
}

// Refusals before the password is checked (the bcrypt budget spent, the
// address locked) are held too: they are what a flood mostly gets.
func TestLoginRefusalsAreHeldToo(t *testing.T) {
	ctx := context.Background()
	p, waits := delayPortal(t, LoginLimits{AddressMaxFailures: 1, MaxFailures: -1}, HashLimits{PerSecond: 1, Burst: 1})
	if _, err := p.Login(ctx, "nobody@example.com", "wrong", "192.0.2.1"); !errors.Is(err, errBadCredentials) {
		t.Fatal(err)
	}
	var lo *LockedOut
	if _, err := p.Login(ctx, "nobody@example.com", "wrong", "192.0.2.1"); !errors.As(err, &lo) {
		t.Fatalf("locked address: %v", err)
	}
	if _, err := p.Login(ctx, "nobody@example.com", "wrong", "192.0.2.2"); !errors.As(err, &lo) {
		t.Fatalf("spent budget: %v", err)
	}
	if len(*waits) != 3 {
		t.Fatalf("held %d of 3 refusals", len(*waits))
	}
}

// No delay when it is disabled, nor once maxHeldFailures answers are
// already held.
func TestFailureDelayOffAndBounded(t *testing.T) {
	ctx := context.Background()
	p, waits := delayPortal(t, LoginLimits{FailureDelay: -1}, HashLimits{PerSecond: -1})
	if _, err := p.Login(ctx, "ann@example.com", "wrong", "192.0.2.1"); err == nil {
		t.Fatal("a wrong password logged in")
	}
	if len(*waits) != 0 {
		t.Fatalf("held with the delay off: %v", *waits)
	}
	p, waits = delayPortal(t, LoginLimits{}, HashLimits{PerSecond: -1})
	p.held.Store(maxHeldFailures - 1)
	if _, err := p.Login(ctx, "ann@example.com", "wrong", "192.0.2.1"); err == nil {
		t.Fatal("a wrong password logged in")
	}
	if len(*waits) != 1 || p.held.Load() != maxHeldFailures-1 {
		t.Fatalf("the last free place: waits %v, held %d", *waits, p.held.Load())
	}
	p.held.Store(maxHeldFailures)
	if _, err := p.Login(ctx, "ann@example.com", "wrong", "192.0.2.1"); err == nil {
		t.Fatal("a wrong password logged in")
	}
	if len(*waits) != 1 || p.held.Load() != maxHeldFailures {
		t.Fatalf("held beyond the bound: waits %v, held %d", *waits, p.held.Load())
	}
}

// The real wait ends when the request goes away.
func TestFailureDelayEndsWithTheRequest(t *testing.T) {
	p, _ := delayPortal(t, LoginLimits{FailureDelay: 30 * time.Second, MaxFailures: -1}, HashLimits{PerSecond: -1})
	p.wait = nil
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := p.Login(ctx, "ann@example.com", "wrong", "192.0.2.1"); done <- err }()
	for p.held.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("answered (%v) before the delay or the request ended", err)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the held answer outlived its request")
	}
	if p.held.Load() != 0 {
		t.Fatalf("held = %d after the answer", p.held.Load())
	}
}
