// Package clientauth decides whether a client certificate may be used: an
// in-memory registry of every issued certificate (active and revoked),
// loaded from the clients table and kept fresh by polling, by Redis pub/sub
// between nodes, and at once on the node that made a change. The TLS
// handshake verifier and the internal API consult it, so a check costs a
// map lookup, not a query.
package clientauth

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/msgbroker/caddy-msgbroker/clientca"
	"github.com/msgbroker/caddy-msgbroker/storage"
)

// Reasons a certificate is refused.
var (
	ErrUnknown  = errors.New("client certificate unknown")
	ErrRevoked  = errors.New("client certificate revoked")
	ErrExpired  = errors.New("client certificate expired")
	ErrMismatch = errors.New("client certificate does not match its registration")
	ErrNotReady = errors.New("client certificate registry not loaded")
)

// Channel is the Redis pub/sub channel on which nodes announce changes to
// the clients table; the message is the certificate serial.
const Channel = "msgbroker:clients:changed"

// pollOverlap re-reads a window before the last change seen, because the
// updated_at stamps come from other nodes' clocks and from transactions that
// may commit out of order. Re-applying a row is harmless.
const pollOverlap = 30 * time.Second

// Entry is what the registry knows of one certificate.
type Entry struct {
	Serial   string
	ClientID string
	Role     string
	Status   string
	NotAfter time.Time
}

// Source is where the registry reads certificates from; *storage.ClientRepo
// satisfies it.
type Source interface {
	ChangedSince(ctx context.Context, t time.Time) ([]storage.Client, error)
}

// Registry is the in-memory view of the clients table.
type Registry struct {
	source Source
	logger *zap.Logger
	now    func() time.Time

	mu      sync.RWMutex
	entries map[string]Entry
	cursor  time.Time
	loaded  bool

	// lastMissRefresh (unix nanoseconds) rate-limits the refreshes that
	// unknown serials trigger.
	lastMissRefresh atomic.Int64
}

// missRefreshInterval is the least time between two refreshes triggered by
// an unknown serial. Only certificates whose chain verified against our CA
// reach the registry, so misses are rare and legitimate (a certificate
// issued a moment ago, on another node or by the CLI); the limit keeps a
// burst of them to one query.
const missRefreshInterval = 250 * time.Millisecond

// NewRegistry returns an empty registry over source; call Refresh to load.
func NewRegistry(source Source, logger *zap.Logger) *Registry {
	return &Registry{source: source, logger: logger, now: time.Now, entries: map[string]Entry{}}
}

// SerialHex is the canonical text form of a certificate serial, as stored
// in clients.serial_number (clientca.SerialHex).
func SerialHex(n *big.Int) string { return clientca.SerialHex(n) }

// Check returns the entry for serial when the certificate may be used by
// clientID now, or the reason it may not.
func (r *Registry) Check(serial, clientID string) (Entry, error) {
	r.mu.RLock()
	e, ok := r.entries[serial]
	loaded := r.loaded
	r.mu.RUnlock()
	switch {
	case !loaded:
		return Entry{}, ErrNotReady
	case !ok:
		return Entry{}, ErrUnknown
	case e.Status != storage.ClientActive:
		return e, ErrRevoked
	case r.now().After(e.NotAfter):
		return e, ErrExpired
	case e.ClientID != clientID:
		return e, ErrMismatch
	}
	return e, nil
}

// CheckFresh is Check, except that an unknown serial first triggers a
// refresh (at most one per missRefreshInterval), so a certificate issued
// elsewhere a moment ago is accepted without waiting for the next poll.
func (r *Registry) CheckFresh(ctx context.Context, serial, clientID string) (Entry, error) {
	e, err := r.Check(serial, clientID)
	if !errors.Is(err, ErrUnknown) {
		return e, err
	}
	last := r.lastMissRefresh.Load()
	now := r.now().UnixNano()
	if now-last < int64(missRefreshInterval) || !r.lastMissRefresh.CompareAndSwap(last, now) {
		return e, err
	}
	if refreshErr := r.Refresh(ctx); refreshErr != nil {
		r.logger.Warn("refreshing the client registry for an unknown certificate failed", zap.Error(refreshErr))
		return e, err
	}
	return r.Check(serial, clientID)
}

// Refresh applies every change since the last refresh (all rows the first
// time).
func (r *Registry) Refresh(ctx context.Context) error {
	r.mu.RLock()
	since := r.cursor
	r.mu.RUnlock()
	if !since.IsZero() {
		since = since.Add(-pollOverlap)
	}
	rows, err := r.source.ChangedSince(ctx, since)
	if err != nil {
		return fmt.Errorf("refreshing client certificate registry: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range rows {
		r.entries[c.SerialNumber] = Entry{
			Serial: c.SerialNumber, ClientID: c.ClientID, Role: c.Role, Status: c.Status, NotAfter: c.NotAfter,
		}
		if c.UpdatedAt.After(r.cursor) {
			r.cursor = c.UpdatedAt
		}
	}
	r.loaded = true
	return nil
}

// Len returns the number of certificates known.
func (r *Registry) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.entries)
}

// Run keeps the registry fresh until ctx ends: it polls every interval and,
// when rdb is not nil, refreshes as soon as another node announces a change.
func (r *Registry) Run(ctx context.Context, interval time.Duration, rdb redis.UniversalClient) {
	var changes <-chan *redis.Message
	if rdb != nil {
		sub := rdb.Subscribe(ctx, Channel)
		defer sub.Close()
		changes = sub.Channel()
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case _, ok := <-changes:
			if !ok {
				changes = nil
				continue
			}
		}
		if err := r.Refresh(ctx); err != nil && ctx.Err() == nil {
			r.logger.Warn("client certificate registry refresh failed; keeping the last known state", zap.Error(err))
		}
	}
}

// Announce refreshes this node at once and tells the other nodes through
// Redis (when configured) that serial changed.
func (r *Registry) Announce(ctx context.Context, serial string, rdb redis.UniversalClient) error {
	if err := r.Refresh(ctx); err != nil {
		return err
	}
	if rdb == nil {
		return nil
	}
	if err := rdb.Publish(ctx, Channel, serial).Err(); err != nil {
		r.logger.Warn("announcing a client certificate change through redis failed; other nodes will see it when they poll",
			zap.String("serial", serial), zap.Error(err))
	}
	return nil
}
