package broker

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
)

// LockedOut is the cause of a TooManyRequests login refusal; the HTTP
// layer turns RetryAfter into a Retry-After header.
type LockedOut struct {
	RetryAfter time.Duration
}

func (l *LockedOut) Error() string {
	return fmt.Sprintf("locked out for %s", l.RetryAfter)
}

// RetryAfterSeconds is RetryAfter rounded up to whole seconds, at least 1.
func (l *LockedOut) RetryAfterSeconds() int {
	return max(1, int(math.Ceil(l.RetryAfter.Seconds())))
}

func lockedOut(retry time.Duration) error {
	return apperr.Wrap(&LockedOut{RetryAfter: retry}, apperr.TooManyRequests, "login_locked",
		"too many failed logins; try again in %d s", (&LockedOut{RetryAfter: retry}).RetryAfterSeconds())
}

// HashPool runs bcrypt on a bounded number of goroutines. bcrypt at cost
// 12 costs about a quarter second of CPU; without a bound a login flood
// would take every core from the internal API. Logins beyond the workers
// wait in a bounded queue; when that is full the login is refused at
// once with 429 rather than piling up.
type HashPool struct {
	workers chan struct{}
	waiting chan struct{}
}

// NewHashPool returns a pool of n workers (default: half the CPUs, at
// least one) with room for queue waiting logins (default 64).
func NewHashPool(n, queue int) *HashPool {
	if n <= 0 {
		n = max(1, runtime.GOMAXPROCS(0)/2)
	}
	if queue <= 0 {
		queue = 64
	}
	return &HashPool{workers: make(chan struct{}, n), waiting: make(chan struct{}, n+queue)}
}

// admit lets one login in, or refuses it at once with 429 when the
// workers and the queue are taken. Logins are admitted before they touch
// the database, so a flood is turned away before it costs a query or a
// connection of the pool the internal API needs. release must be called.
func (p *HashPool) admit() (release func(), err error) {
	select {
	case p.waiting <- struct{}{}:
		return func() { <-p.waiting }, nil
	default:
		return nil, apperr.Wrap(&LockedOut{RetryAfter: time.Second}, apperr.TooManyRequests, "login_busy", "too many logins at once; retry in a second")
	}
}

// do runs fn on a worker; the caller has been admitted.
func (p *HashPool) do(ctx context.Context, fn func()) error {
	select {
	case p.workers <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-p.workers }()
	fn()
	return nil
}

// Compare checks password against a bcrypt hash on a worker. The caller
// must have been admitted.
func (p *HashPool) Compare(ctx context.Context, hash, password string) (bool, error) {
	var match bool
	err := p.do(ctx, func() {
		match = bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
	})
	return match, err
}

// Hash hashes password at cost on a worker. The caller must have been
// admitted.
func (p *HashPool) Hash(ctx context.Context, password string, cost int) (string, error) {
	var (
		hash []byte
		herr error
	)
	if err := p.do(ctx, func() { hash, herr = bcrypt.GenerateFromPassword([]byte(password), cost) }); err != nil {
		return "", err
	}
	if herr != nil {
		return "", fmt.Errorf("hashing password: %w", herr)
	}
	return string(hash), nil
}

// addressGuard counts failed logins per remote address in memory, so one
// address cannot try many accounts (or one unknown account) without
// limit. It is per node: each node of a cluster allows the limit.
type addressGuard struct {
	max     int
	window  time.Duration
	lockout time.Duration

	mu    sync.Mutex
	addrs map[string]*addressState
}

type addressState struct {
	failures    int
	windowStart time.Time
	lockedUntil time.Time
}

// check returns a lockout error while addr is locked.
func (g *addressGuard) check(addr string, now time.Time) error {
	if g.max < 1 {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if st := g.addrs[addr]; st != nil && now.Before(st.lockedUntil) {
		return lockedOut(st.lockedUntil.Sub(now))
	}
	return nil
}

// fail counts a failure of addr and reports whether it locked the address.
func (g *addressGuard) fail(addr string, now time.Time) bool {
	if g.max < 1 {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.addrs == nil {
		g.addrs = make(map[string]*addressState)
	}
	g.prune(now)
	st := g.addrs[addr]
	if st == nil || now.Sub(st.windowStart) > g.window {
		st = &addressState{windowStart: now}
		g.addrs[addr] = st
	}
	st.failures++
	if st.failures >= g.max {
		st.failures, st.windowStart, st.lockedUntil = 0, now, now.Add(g.lockout)
		return true
	}
	return false
}

// prune forgets addresses with nothing left to remember, so a flood from
// many addresses does not grow the map without bound.
func (g *addressGuard) prune(now time.Time) {
	if len(g.addrs) < 10000 {
		return
	}
	for a, st := range g.addrs {
		if now.After(st.lockedUntil) && now.Sub(st.windowStart) > g.window {
			delete(g.addrs, a)
		}
	}
}
