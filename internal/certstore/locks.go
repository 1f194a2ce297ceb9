package certstore

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
)

// lease is one lock this process holds: the owner token written in its
// row, and the goroutine keeping it alive.
type lease struct {
	owner string
	stop  context.CancelFunc
	done  chan struct{}
}

// leases are the locks held through one Store, by name.
type leases struct {
	mu   sync.Mutex
	held map[string]*lease
}

func newLeases() *leases { return &leases{held: map[string]*lease{}} }

func (l *leases) put(name string, le *lease) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.held[name] = le
}

func (l *leases) take(name string) *lease {
	l.mu.Lock()
	defer l.mu.Unlock()
	le := l.held[name]
	delete(l.held, name)
	return le
}

func (l *leases) get(name string) *lease {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held[name]
}

// Lock takes the lock name, waiting while another holder has it, until
// ctx ends. Another goroutine of this process asking for the same name
// waits like another node would.
func (s *Store) Lock(ctx context.Context, name string) error {
	wait := s.pollInterval()
	for {
		ok, err := s.TryLock(ctx, name)
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for storage lock %q: %w", name, context.Cause(ctx))
		case <-time.After(wait):
		}
	}
}

// pollInterval is the wait between attempts on a held lock: a second, as
// FileStorage waits, or a quarter of the lock's lifetime when that is
// shorter, so a lock that expires is taken soon after.
func (s *Store) pollInterval() time.Duration {
	return min(maxPoll, s.ttl/4)
}

// TryLock takes the lock name if nobody holds it (or its holder let it
// expire), and reports whether it did.
func (s *Store) TryLock(ctx context.Context, name string) (bool, error) {
	if err := CheckKey(name); err != nil {
		return false, err
	}
	owner := s.owner + "/" + randomHex(8)
	ok, err := s.repo.TryLock(ctx, name, owner, s.ttl)
	if err != nil || !ok {
		return false, err
	}
	keepCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	le := &lease{owner: owner, stop: stop, done: make(chan struct{})}
	s.locks.put(name, le)
	go s.keepAlive(keepCtx, name, le)
	s.logger.Debug("storage lock taken", zap.String("lock", name), zap.String("owner", owner))
	return true, nil
}

// keepAlive extends the lock every third of its lifetime until it is
// released. If the lock was lost (it expired while the database was out
// of reach, and another node took it), it says so and stops: certmagic's
// callers tolerate a rare overlap, as its Locker documents.
func (s *Store) keepAlive(ctx context.Context, name string, le *lease) {
	defer close(le.done)
	tick := time.NewTicker(s.ttl / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if !s.extend(ctx, name, le) {
			return
		}
	}
}

// extend extends the lock once and reports whether to go on: not when it
// was released meanwhile, nor when it was lost.
func (s *Store) extend(ctx context.Context, name string, le *lease) bool {
	extendCtx, cancel := context.WithTimeout(ctx, s.ttl/3)
	held, err := s.repo.ExtendLock(extendCtx, name, le.owner, s.ttl)
	cancel()
	if ctx.Err() != nil {
		return false
	}
	if err != nil {
		s.logger.Warn("could not extend a storage lock; retrying", zap.String("lock", name), zap.Error(err))
		return true
	}
	if !held {
		s.logger.Error("storage lock lost: it expired and another holder may have taken it",
			zap.String("lock", name), zap.String("owner", le.owner))
	}
	return held
}

// Unlock releases the lock name, which this Store must hold.
func (s *Store) Unlock(ctx context.Context, name string) error {
	le := s.locks.take(name)
	if le == nil {
		return apperr.New(apperr.Conflict, "storage_lock_not_held", "storage lock %q is not held by this node", name)
	}
	le.stop()
	<-le.done
	released, err := s.repo.Unlock(ctx, name, le.owner)
	if err != nil {
		return err
	}
	if !released {
		return apperr.New(apperr.Conflict, "storage_lock_lost", "storage lock %q had expired and was no longer ours to release", name)
	}
	s.logger.Debug("storage lock released", zap.String("lock", name))
	return nil
}

// RenewLockLease makes a held lock last at least lease from now, for an
// operation certmagic expects to run long (an ACME order with retries).
// The lock's regular extensions never shorten it again.
func (s *Store) RenewLockLease(ctx context.Context, name string, lease time.Duration) error {
	le := s.locks.get(name)
	if le == nil {
		return apperr.New(apperr.Conflict, "storage_lock_not_held", "storage lock %q is not held by this node", name)
	}
	held, err := s.repo.ExtendLock(ctx, name, le.owner, lease)
	if err != nil {
		return err
	}
	if !held {
		return apperr.New(apperr.Conflict, "storage_lock_lost", "storage lock %q had expired and was taken over", name)
	}
	return nil
}

// Interface guards.
var (
	_ certmagic.Storage          = (*Store)(nil)
	_ certmagic.TryLocker        = (*Store)(nil)
	_ certmagic.LockLeaseRenewer = (*Store)(nil)
)
