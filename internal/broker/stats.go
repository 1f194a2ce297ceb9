package broker

import (
	"context"
	"fmt"
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

// CollectStats reads the statistics as of now.
func CollectStats(ctx context.Context, store *storage.Store, now time.Time) (Stats, error) {
	s := Stats{GeneratedAt: now.UTC()}
	byStatus, err := store.Messages.CountByStatus(ctx)
	if err != nil {
		return s, fmt.Errorf("collecting statistics: %w", err)
	}
	m := &s.Messages
	m.Queued, m.Processing, m.Retrying = byStatus[storage.MessageQueued], byStatus[storage.MessageProcessing], byStatus[storage.MessageRetrying]
	m.Delivered, m.Failed = byStatus[storage.MessageDelivered], byStatus[storage.MessageFailed]
	for _, n := range byStatus {
		m.Total += n
	}
	if m.Last24h, err = store.Messages.CountSince(ctx, now.Add(-24*time.Hour)); err != nil {
		return s, fmt.Errorf("collecting statistics: %w", err)
	}
	if m.Last7d, err = store.Messages.CountSince(ctx, now.Add(-7*24*time.Hour)); err != nil {
		return s, fmt.Errorf("collecting statistics: %w", err)
	}

	counts, err := store.Clients.Counts(ctx)
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
	s.Clients.Total, s.Clients.Revoked = counts.Total, counts.Revoked
	s.Clients.Active = counts.Active - s.Clients.Expired

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
