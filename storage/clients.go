package storage

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/uptrace/bun"
)

// ClientRepo reads and writes the clients table of issued client
// certificates. Serial numbers and fingerprints are stored in lowercase hex.
type ClientRepo struct {
	db *bun.DB
}

// ClientCounts are the certificate totals for the statistics page.
type ClientCounts struct {
	Total   int64
	Active  int64
	Revoked int64
}

// Insert records an issued certificate and sets c.ID. An empty status
// becomes ClientActive and unset timestamps default to now. A duplicate
// serial number or fingerprint yields ErrConflict.
func (r *ClientRepo) Insert(ctx context.Context, c *Client) error {
	t := now()
	c.SerialNumber = strings.ToLower(c.SerialNumber)
	c.FingerprintSHA256 = strings.ToLower(c.FingerprintSHA256)
	if c.Status == "" {
		c.Status = ClientActive
	}
	c.IssuedAt = orTime(c.IssuedAt, t)
	c.NotAfter = utc(c.NotAfter)
	c.RevokedAt = utcPtr(c.RevokedAt)
	c.CreatedAt = orTime(c.CreatedAt, t)
	c.UpdatedAt = orTime(c.UpdatedAt, t)
	if _, err := execWrite(ctx, r.db.NewInsert().Model(c)); err != nil {
		return dbError(err, "inserting client certificate %s", c.SerialNumber)
	}
	return nil
}

// GetBySerial returns the certificate with the given serial number (hex,
// any case) or ErrNotFound.
func (r *ClientRepo) GetBySerial(ctx context.Context, serial string) (*Client, error) {
	serial = strings.ToLower(serial)
	c := new(Client)
	if err := r.db.NewSelect().Model(c).Where("serial_number = ?", serial).Scan(ctx); err != nil {
		return nil, dbError(err, "getting client certificate %s", serial)
	}
	return c, nil
}

// ListFilter returns certificates, newest first, optionally restricted to a
// status and a client id (empty strings do not filter).
func (r *ClientRepo) ListFilter(ctx context.Context, status, clientID string) ([]Client, error) {
	var clients []Client
	q := r.db.NewSelect().Model(&clients)
	if status != "" {
		q = q.Where("status = ?", status)
	}
	if clientID != "" {
		q = q.Where("client_id = ?", clientID)
	}
	if err := q.OrderExpr("id DESC").Scan(ctx); err != nil {
		return nil, dbError(err, "listing client certificates")
	}
	return clients, nil
}

// Revoke marks an active certificate revoked at time at with the given
// reason. It returns ErrNotFound if there is no such certificate and
// ErrConflict if it is already revoked.
func (r *ClientRepo) Revoke(ctx context.Context, serial, reason string, at time.Time) error {
	serial = strings.ToLower(serial)
	at = orTime(at, now())
	q := r.db.NewUpdate().Model((*Client)(nil)).
		Set("status = ?", ClientRevoked).
		Set("revoked_at = ?", at).
		Set("revocation_reason = ?", reason).
		Set("updated_at = ?", at).
		Where("serial_number = ?", serial).
		Where("status = ?", ClientActive)
	res, err := execWrite(ctx, q)
	if err != nil {
		return dbError(err, "revoking client certificate %s", serial)
	}
	revoked, err := affectedOne(res)
	if err != nil {
		return dbError(err, "revoking client certificate %s", serial)
	}
	if revoked {
		return nil
	}
	// Nothing matched: tell a missing certificate from a revoked one.
	exists, err := r.db.NewSelect().Model((*Client)(nil)).Where("serial_number = ?", serial).Exists(ctx)
	switch {
	case err != nil:
		return dbError(err, "revoking client certificate %s", serial)
	case exists:
		return fmt.Errorf("revoking client certificate %s: already revoked: %w", serial, ErrConflict)
	default:
		return dbError(sql.ErrNoRows, "revoking client certificate %s", serial)
	}
}

func (r *ClientRepo) serials(ctx context.Context, status string) ([]string, error) {
	serials := []string{}
	err := r.db.NewSelect().Model((*Client)(nil)).
		Column("serial_number").
		Where("status = ?", status).
		Order("serial_number").
		Scan(ctx, &serials)
	if err != nil {
		return nil, dbError(err, "listing %s client certificate serials", status)
	}
	return serials, nil
}

// ChangedSince returns the certificates inserted or revoked at or after t,
// oldest change first, so a revocation cache can refresh incrementally.
// Callers should overlap successive windows a little: t is compared with
// timestamps written by other nodes' clocks.
func (r *ClientRepo) ChangedSince(ctx context.Context, t time.Time) ([]Client, error) {
	var clients []Client
	err := r.db.NewSelect().Model(&clients).
		Where("updated_at >= ?", utc(t)).
		OrderExpr("updated_at ASC, id ASC").
		Scan(ctx)
	if err != nil {
		return nil, dbError(err, "listing client certificates changed since %s", t.UTC().Format(time.RFC3339))
	}
	return clients, nil
}

// Counts returns the number of certificates, in total and per status.
func (r *ClientRepo) Counts(ctx context.Context) (ClientCounts, error) {
	var rows []countRow
	err := r.db.NewSelect().Model((*Client)(nil)).
		ColumnExpr("status AS label").
		ColumnExpr("COUNT(*) AS total").
		Group("status").
		Scan(ctx, &rows)
	if err != nil {
		return ClientCounts{}, dbError(err, "counting client certificates")
	}
	m := countMap(rows)
	c := ClientCounts{Active: m[ClientActive], Revoked: m[ClientRevoked]}
	for _, n := range m {
		c.Total += n
	}
	return c, nil
}
