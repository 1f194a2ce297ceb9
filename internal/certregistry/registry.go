// Package certregistry decides whether a client certificate may be used: an
// in-memory registry of every issued certificate (active and revoked),
// loaded from the clients table and kept fresh at once on the node that
// made a change, through Redis pub/sub between nodes, and by polling. The
// TLS handshake verifier and the internal API consult it, so a check costs
// a map lookup, not a query.
package certregistry

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/msgbroker/caddy-msgbroker/internal/clientca"
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

// Refresh policy. The incremental poll reads rows changed since the newest
// updated_at seen, minus pollOverlap, because those stamps come from the
// clocks of whichever node or CLI wrote them and from transactions that may
// commit out of order. A clock off by more than the overlap could hide a
// change from the incremental poll, so every fullReloadEvery the whole
// table is read again: that bounds how stale a node can be whatever the
// clocks say. Announced changes (local or through Redis) are read by serial
// and applied at once, independent of any clock.
const (
	pollOverlap     = 5 * time.Minute
	fullReloadEvery = 30 * time.Second
)

// Lookups of unknown serials. Only certificates whose chain verified
// against our CA reach the registry, so a miss is legitimate (a certificate
// issued a moment ago, on another node or by the CLI) and each serial is
// looked up itself: concurrent handshakes with the same serial share one
// query, and a serial the database does not have either is not queried
// again for missRefreshInterval. At most maxPendingMisses serials are
// remembered per interval, which bounds memory and queries even if
// certificates with random serials were signed by our CA.
const (
	missRefreshInterval = 250 * time.Millisecond
	maxPendingMisses    = 1024
)

// Entry is what the registry knows of one certificate.
type Entry struct {
	Serial      string
	ClientID    string
	Role        string
	Status      string
	NotAfter    time.Time
	Fingerprint string
	UpdatedAt   time.Time
}

// Source is where the registry reads certificates from; *storage.ClientRepo
// satisfies it.
type Source interface {
	ChangedSince(ctx context.Context, t time.Time) ([]storage.Client, error)
	GetBySerial(ctx context.Context, serial string) (*storage.Client, error)
}

// Registry is the in-memory view of the clients table.
type Registry struct {
	source Source
	logger *zap.Logger
	now    func() time.Time

	// refreshMu serializes reads of the table, so an older snapshot is
	// never applied over a newer one.
	refreshMu sync.Mutex
	lastFull  time.Time
	mu        sync.RWMutex
	entries   map[string]Entry
	cursor    time.Time
	loaded    bool

	misses  missLog
	lookups singleflight.Group
}

// NewRegistry returns an empty registry over source; call Refresh to load.
func NewRegistry(source Source, logger *zap.Logger) *Registry {
	return &Registry{source: source, logger: logger, now: time.Now, entries: map[string]Entry{}}
}

// Check returns the entry for leaf when it may be used now: its serial is
// registered, active, unexpired, and registered to this very certificate
// (same CN and SHA-256 fingerprint, so another certificate from the same
// CA that happens to share a serial is refused).
func (r *Registry) Check(leaf *x509.Certificate) (Entry, error) {
	serial := clientca.SerialHex(leaf.SerialNumber)
	r.mu.RLock()
	e, ok := r.entries[serial]
	loaded := r.loaded
	r.mu.RUnlock()
	switch {
	case !loaded:
		return Entry{}, ErrNotReady
	case !ok:
		return Entry{Serial: serial}, ErrUnknown
	case e.ClientID != leaf.Subject.CommonName || e.Fingerprint != clientca.Fingerprint(leaf):
		return e, ErrMismatch
	case e.Status != storage.ClientActive:
		return e, ErrRevoked
	case r.now().After(e.NotAfter):
		return e, ErrExpired
	}
	return e, nil
}

// Kind is a certificate's status and role; an active certificate past its
// NotAfter counts as "expired".
type Kind struct{ Status, Role string }

// Counts returns how many certificates the registry holds of each kind.
func (r *Registry) Counts() map[Kind]int {
	now := r.now()
	r.mu.RLock()
	defer r.mu.RUnlock()
	counts := make(map[Kind]int)
	for _, e := range r.entries {
		status := e.Status
		if status == storage.ClientActive && now.After(e.NotAfter) {
			status = "expired"
		}
		counts[Kind{Status: status, Role: e.Role}]++
	}
	return counts
}

// CheckFresh is Check, except that an unknown serial is first looked up in
// the database, so a certificate issued elsewhere a moment ago is accepted
// at once, without waiting for the poll.
func (r *Registry) CheckFresh(ctx context.Context, leaf *x509.Certificate) (Entry, error) {
	e, err := r.Check(leaf)
	if !errors.Is(err, ErrUnknown) {
		return e, err
	}
	// Everyone waiting on a lookup under way shares its result; only the
	// caller that starts one is subject to the per-serial pace.
	_, lookupErr, _ := r.lookups.Do(e.Serial, func() (any, error) {
		if !r.misses.admit(e.Serial, r.now()) {
			return nil, nil
		}
		return nil, r.RefreshSerial(ctx, e.Serial)
	})
	if lookupErr != nil {
		r.logger.Warn("looking up an unknown client certificate failed", zap.String("serial", e.Serial), zap.Error(lookupErr))
		return e, err
	}
	return r.Check(leaf)
}

// missLog remembers when each unknown serial was last looked up.
type missLog struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// admit reports whether serial may be looked up at now, and records the
// lookup when it may: not when the serial was looked up less than
// missRefreshInterval ago, nor when maxPendingMisses other serials were.
func (m *missLog) admit(serial string, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.last == nil {
		m.last = make(map[string]time.Time)
	}
	if at, ok := m.last[serial]; ok && now.Sub(at) < missRefreshInterval {
		return false
	}
	if len(m.last) >= maxPendingMisses {
		for s, at := range m.last {
			if now.Sub(at) >= missRefreshInterval {
				delete(m.last, s)
			}
		}
		if len(m.last) >= maxPendingMisses {
			return false
		}
	}
	m.last[serial] = now
	return true
}

// RefreshSerial reads one certificate by serial and applies it: the path
// of announced changes, which no clock skew can hide.
func (r *Registry) RefreshSerial(ctx context.Context, serial string) error {
	r.refreshMu.Lock()
	defer r.refreshMu.Unlock()
	c, err := r.source.GetBySerial(ctx, serial)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading client certificate %s: %w", serial, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.apply(*c)
	return nil
}

// Refresh applies the changes since the last refresh, or reads the whole
// table when it never did or fullReloadEvery has passed.
func (r *Registry) Refresh(ctx context.Context) error {
	r.refreshMu.Lock()
	defer r.refreshMu.Unlock()
	if r.lastFull.IsZero() || r.now().Sub(r.lastFull) >= fullReloadEvery {
		return r.reloadAll(ctx)
	}
	r.mu.RLock()
	since := r.cursor.Add(-pollOverlap)
	r.mu.RUnlock()
	rows, err := r.source.ChangedSince(ctx, since)
	if err != nil {
		return fmt.Errorf("refreshing client certificate registry: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range rows {
		r.apply(c)
	}
	return nil
}

// reloadAll replaces the registry with the whole table.
func (r *Registry) reloadAll(ctx context.Context) error {
	rows, err := r.source.ChangedSince(ctx, time.Time{})
	if err != nil {
		return fmt.Errorf("loading client certificate registry: %w", err)
	}
	entries := make(map[string]Entry, len(rows))
	var cursor time.Time
	for _, c := range rows {
		entries[c.SerialNumber] = entryOf(c)
		if c.UpdatedAt.After(cursor) {
			cursor = c.UpdatedAt
		}
	}
	r.mu.Lock()
	r.entries, r.cursor, r.loaded = entries, cursor, true
	r.mu.Unlock()
	r.lastFull = r.now()
	return nil
}

// apply stores c unless the registry already holds a newer state of it.
// The caller holds mu.
func (r *Registry) apply(c storage.Client) {
	if held, ok := r.entries[c.SerialNumber]; ok && held.UpdatedAt.After(c.UpdatedAt) {
		return
	}
	r.entries[c.SerialNumber] = entryOf(c)
	if c.UpdatedAt.After(r.cursor) {
		r.cursor = c.UpdatedAt
	}
}

func entryOf(c storage.Client) Entry {
	return Entry{
		Serial: c.SerialNumber, ClientID: c.ClientID, Role: c.Role, Status: c.Status,
		NotAfter: c.NotAfter, Fingerprint: c.FingerprintSHA256, UpdatedAt: c.UpdatedAt,
	}
}

// subscribeWait bounds how long Listen holds up a config load waiting for
// Redis; the poll covers a node that could not subscribe.
const subscribeWait = 5 * time.Second

// Listen subscribes to the changes other nodes announce and waits, until
// ctx ends, for Redis to confirm the subscription; then it refreshes once,
// so a change announced between the registry's first load and the
// subscription is not missed until the next poll. Redis does not keep
// messages for late subscribers, which is why the wait and the refresh
// come before the node serves. With rdb nil it returns nil. A subscription
// that cannot be confirmed now is logged and kept: Run's receive loop
// reconnects and resubscribes, and refreshes when it does.
func (r *Registry) Listen(ctx context.Context, rdb redis.UniversalClient) *redis.PubSub {
	if rdb == nil {
		return nil
	}
	waitCtx, cancel := context.WithTimeout(ctx, subscribeWait)
	defer cancel()
	sub := rdb.Subscribe(waitCtx, Channel)
	if _, err := sub.Receive(waitCtx); err != nil {
		r.logger.Warn("subscribing to client certificate announcements failed; retrying in the background, polling meanwhile",
			zap.String("channel", Channel), zap.Error(err))
		return sub
	}
	if err := r.Refresh(ctx); err != nil {
		r.logger.Warn("client certificate registry refresh failed; keeping the last known state", zap.Error(err))
	}
	return sub
}

// Run keeps the registry fresh until ctx ends: it polls every interval
// and, when sub is not nil (see Listen), applies each serial another node
// announces at once. Each (re)subscription after a lost connection is
// followed by a refresh, since announcements made while the connection was
// down are gone. Run closes sub when it returns.
func (r *Registry) Run(ctx context.Context, interval time.Duration, sub *redis.PubSub) {
	var changes <-chan any
	if sub != nil {
		defer sub.Close()
		changes = sub.ChannelWithSubscriptions()
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		var err error
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			err = r.Refresh(ctx)
		case msg, ok := <-changes:
			if !ok {
				changes = nil
				continue
			}
			err = r.applyAnnouncement(ctx, msg)
		}
		if err != nil && ctx.Err() == nil {
			r.logger.Warn("client certificate registry refresh failed; keeping the last known state", zap.Error(err))
		}
	}
}

// applyAnnouncement applies one item of the subscription: an announced
// serial, or a (re)subscription, after which everything changed while the
// connection was down is read.
func (r *Registry) applyAnnouncement(ctx context.Context, msg any) error {
	switch m := msg.(type) {
	case *redis.Message:
		return r.RefreshSerial(ctx, m.Payload)
	case *redis.Subscription:
		return r.Refresh(ctx)
	}
	return nil
}

// Announce applies the change of serial on this node at once and tells the
// other nodes through Redis (when configured).
func (r *Registry) Announce(ctx context.Context, serial string, rdb redis.UniversalClient) error {
	if err := r.RefreshSerial(ctx, serial); err != nil {
		return err
	}
	if err := Publish(ctx, rdb, serial); err != nil {
		r.logger.Warn("announcing a client certificate change through redis failed; other nodes will see it when they poll",
			zap.String("serial", serial), zap.Error(err))
	}
	return nil
}

// Publish tells every node listening on Channel that serial changed; with
// no Redis (rdb nil) it does nothing and the nodes' polls catch up.
func Publish(ctx context.Context, rdb redis.UniversalClient, serial string) error {
	if rdb == nil {
		return nil
	}
	if err := rdb.Publish(ctx, Channel, serial).Err(); err != nil {
		return fmt.Errorf("publishing change of certificate %s: %w", serial, err)
	}
	return nil
}
