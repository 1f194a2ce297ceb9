package storage

import (
	"context"
	"time"
)

// Certificate states a ClientPageFilter can ask for. Expiry is not a stored
// status: an active certificate past its not_after is "expired".
const (
	ClientStateActive  = "active"
	ClientStateRevoked = "revoked"
	ClientStateExpired = "expired"
)

// ClientPageFilter selects a page of certificates, newest first. Zero
// fields do not filter.
type ClientPageFilter struct {
	// State is ClientStateActive (active and not expired at Now),
	// ClientStateRevoked or ClientStateExpired (active but past not_after).
	State    string
	ClientID string
	// ExpiresBefore keeps active certificates whose not_after is before
	// it and not before Now: those about to expire.
	ExpiresBefore time.Time
	// Now is the time State and ExpiresBefore are judged at.
	Now time.Time
	// BeforeID continues a list after the row with that id (keyset
	// paging: ids only grow, so the next page is the smaller ids).
	BeforeID int64
	Limit    int
}

// ListPage returns at most f.Limit certificates matching f, by id
// descending. The status, client_id and not_after indexes serve the
// filters; the id order makes each page one index range, whatever its
// depth.
func (r *ClientRepo) ListPage(ctx context.Context, f ClientPageFilter) ([]Client, error) {
	now := utc(orTime(f.Now, now()))
	var clients []Client
	q := r.db.NewSelect().Model(&clients)
	switch f.State {
	case ClientStateActive:
		q = q.Where("status = ?", ClientActive).Where("not_after >= ?", now)
	case ClientStateExpired:
		q = q.Where("status = ?", ClientActive).Where("not_after < ?", now)
	case ClientStateRevoked:
		q = q.Where("status = ?", ClientRevoked)
	}
	if f.ClientID != "" {
		q = q.Where("client_id = ?", f.ClientID)
	}
	if !f.ExpiresBefore.IsZero() {
		q = q.Where("status = ?", ClientActive).Where("not_after >= ?", now).Where("not_after < ?", utc(f.ExpiresBefore))
	}
	if f.BeforeID > 0 {
		q = q.Where("id < ?", f.BeforeID)
	}
	if f.Limit > 0 {
		q = q.Limit(int64(f.Limit))
	}
	if err := q.OrderExpr("id DESC").Scan(ctx); err != nil {
		return nil, dbError(err, "listing client certificates")
	}
	return clients, nil
}
