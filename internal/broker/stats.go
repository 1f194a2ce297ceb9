package broker

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/msgbroker/caddy-msgbroker/storage"
)

// Stats are the system statistics of the `stats` command and of
// GET /admin/stats.
type Stats struct {
	Messages    MessageStats `json:"messages"`
	Clients     ClientStats  `json:"clients"`
	Users       UserStats    `json:"users"`
	GeneratedAt time.Time    `json:"generated_at"`
}

// MessageStats counts messages by status and by age.
type MessageStats struct {
	Total      int64 `json:"total"`
	Queued     int64 `json:"queued"`
	Processing int64 `json:"processing"`
	Retrying   int64 `json:"retrying"`
	Delivered  int64 `json:"delivered"`
	Failed     int64 `json:"failed"`
	Last24h    int64 `json:"last_24_hours"`
	Last7d     int64 `json:"last_7_days"`
}

// ClientStats counts issued client certificates. Active excludes expired
// certificates, which are counted apart; Total counts every certificate.
type ClientStats struct {
	Total   int64 `json:"total"`
	Active  int64 `json:"active"`
	Revoked int64 `json:"revoked"`
	Expired int64 `json:"expired"`
}

// UserStats counts portal accounts.
type UserStats struct {
	Total  int64 `json:"total"`
	Admins int64 `json:"admins"`
}

// CollectStats reads the statistics as of now. Message numbers come from
// the counters the message repository maintains (storage/stats.go), so the
// cost does not grow with the number of messages.
func CollectStats(ctx context.Context, store *storage.Store, now time.Time) (Stats, error) {
	counts, err := store.Messages.StatusCounts(ctx)
	if err != nil {
		return Stats{GeneratedAt: now.UTC()}, fmt.Errorf("collecting statistics: %w", err)
	}
	hours, err := store.Messages.Hours(ctx, storage.HourOf(now.Add(-7*24*time.Hour)), math.MaxInt64)
	if err != nil {
		return Stats{GeneratedAt: now.UTC()}, fmt.Errorf("collecting statistics: %w", err)
	}
	return collectStats(ctx, store, now, counts, hours)
}

func collectStats(ctx context.Context, store *storage.Store, now time.Time, counts []storage.MessageCount, hours []storage.MessageHour) (Stats, error) {
	s := Stats{GeneratedAt: now.UTC()}
	m := &s.Messages
	for _, c := range counts {
		m.add(c.Status, c.N)
	}
	var err error
	if m.Last24h, err = registeredSince(ctx, store, hours, now.Add(-24*time.Hour)); err != nil {
		return s, fmt.Errorf("collecting statistics: %w", err)
	}
	if m.Last7d, err = registeredSince(ctx, store, hours, now.Add(-7*24*time.Hour)); err != nil {
		return s, fmt.Errorf("collecting statistics: %w", err)
	}
	certs, err := store.Clients.Counts(ctx)
	if err != nil {
		return s, fmt.Errorf("collecting statistics: %w", err)
	}
	// An expired certificate keeps status active in the table; the
	// handshake refuses it all the same, so it is not counted as active.
	active, err := store.Clients.ListFilter(ctx, storage.ClientActive, "")
	if err != nil {
		return s, fmt.Errorf("collecting statistics: %w", err)
	}
	for _, c := range active {
		if !now.Before(c.NotAfter) {
			s.Clients.Expired++
		}
	}
	s.Clients.Total, s.Clients.Revoked = certs.Total, certs.Revoked
	s.Clients.Active = certs.Active - s.Clients.Expired

	byRole, err := store.Users.CountByRole(ctx)
	if err != nil {
		return s, fmt.Errorf("collecting statistics: %w", err)
	}
	for _, n := range byRole {
		s.Users.Total += n
	}
	s.Users.Admins = byRole[storage.RoleAdmin]
	return s, nil
}

// add counts n messages of status.
func (m *MessageStats) add(status string, n int64) {
	m.Total += n
	switch status {
	case storage.MessageQueued:
		m.Queued += n
	case storage.MessageProcessing:
		m.Processing += n
	case storage.MessageRetrying:
		m.Retrying += n
	case storage.MessageDelivered:
		m.Delivered += n
	case storage.MessageFailed:
		m.Failed += n
	}
}

// registeredSince counts the messages created at or after from: the whole
// hours after from's hour from the hourly counters (hours must hold them),
// and the rest of from's hour by an index range scan of at most an hour of
// messages, so the answer is exact to the microsecond.
func registeredSince(ctx context.Context, store *storage.Store, hours []storage.MessageHour, from time.Time) (int64, error) {
	first := storage.HourOf(from) + 1
	n, err := store.Messages.CountCreatedBetween(ctx, from, storage.HourStart(first))
	if err != nil {
		return 0, err
	}
	for _, h := range hours {
		if h.Hour >= first {
			n += h.Registered
		}
	}
	return n, nil
}
