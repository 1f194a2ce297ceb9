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
	"github.com/msgbroker/caddy-msgbroker/internal/lowprio"
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

// HashPool runs bcrypt on a bounded number of goroutines and within a
// budget of hashes per second. bcrypt at cost 12 costs about a quarter
// second of CPU. The workers bound how many cores it can take at once, but
// a worker kept busy by a flood is still a whole core taken from the
// internal API for as long as the flood lasts; the budget bounds the share
// of the machine bcrypt gets over time (2 a second at cost 12 is about half
// a core). Logins beyond the budget, or beyond the workers and a bounded
// queue, are refused at once with 429 login_busy and a Retry-After rather
// than piling up.
type HashPool struct {
	workers chan struct{}
	waiting chan struct{}
	budget  *tokenBucket
}

// HashLimits configure a HashPool; zero values take the defaults.
type HashLimits struct {
	// Workers run bcrypt at once (default: half the CPUs, at least one).
	Workers int
	// Queue is how many admitted logins may wait for a worker (default 64).
	Queue int
	// PerSecond is how many logins a second may start a bcrypt (default:
	// DefaultHashesPerSecondPerCPU times the CPUs); -1 removes the budget.
	PerSecond int
	// Burst is how many may start at once after a quiet spell (default:
	// DefaultHashBurst, or PerSecond when that is more), so a handful of
	// people logging in at the same moment are not turned away.
	Burst int
}

// DefaultHashesPerSecondPerCPU is the default bcrypt budget per CPU. At
// cost 12 (about 0.25 s of CPU each) it gives bcrypt at most a quarter of
// the machine, whatever the flood.
const DefaultHashesPerSecondPerCPU = 1

// DefaultHashBurst is the default burst of the bcrypt budget.
const DefaultHashBurst = 10

// NewHashPool returns a pool with the given limits.
func NewHashPool(l HashLimits) *HashPool {
	if l.Workers <= 0 {
		l.Workers = max(1, runtime.GOMAXPROCS(0)/2)
	}
	if l.Queue <= 0 {
		l.Queue = 64
	}
	p := &HashPool{workers: make(chan struct{}, l.Workers), waiting: make(chan struct{}, l.Workers+l.Queue)}
	if l.PerSecond >= 0 {
		if l.PerSecond == 0 {
			l.PerSecond = DefaultHashesPerSecondPerCPU * runtime.GOMAXPROCS(0)
		}
		if l.Burst <= 0 {
			l.Burst = max(DefaultHashBurst, l.PerSecond)
		}
		p.budget = newTokenBucket(float64(l.PerSecond), float64(l.Burst))
	}
	return p
}

// admit lets one login in, or refuses it at once with 429 when the
// budget is spent or the workers and the queue are taken. Logins are
// admitted before they touch the database, so a flood is turned away
// before it costs a query or a connection of the pool the internal API
// needs. now is the time of the request. release must be called.
func (p *HashPool) admit(now time.Time) (release func(), err error) {
	if p.budget != nil {
		if wait, ok := p.budget.take(now); !ok {
			return nil, busy(wait)
		}
	}
	select {
	case p.waiting <- struct{}{}:
		return func() { <-p.waiting }, nil
	default:
		return nil, busy(time.Second)
	}
}

func busy(retry time.Duration) error {
	lo := &LockedOut{RetryAfter: retry}
	return apperr.Wrap(lo, apperr.TooManyRequests, "login_busy", "too many logins at once; retry in %d s", lo.RetryAfterSeconds())
}

// tokenBucket allows rate events a second on average and burst at once.
type tokenBucket struct {
	rate, burst float64

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func newTokenBucket(rate, burst float64) *tokenBucket {
	return &tokenBucket{rate: rate, burst: burst, tokens: burst}
}

// take spends a token if there is one; otherwise it reports how long
// until there will be.
func (b *tokenBucket) take(now time.Time) (wait time.Duration, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.last.IsZero() && now.After(b.last) {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	if b.last.IsZero() || now.After(b.last) {
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return 0, true
	}
	return time.Duration((1 - b.tokens) / b.rate * float64(time.Second)), false
}

// do runs fn on a worker; the caller has been admitted.
func (p *HashPool) do(ctx context.Context, fn func()) error {
	select {
	case p.workers <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-p.workers }()
	// On a thread of lowered priority: bcrypt computes for a quarter
	// second, and the requests of the internal API must not wait behind it.
	lowprio.Do(fn)
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
