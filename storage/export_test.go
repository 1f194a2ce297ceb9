package storage

import (
	"context"
	"time"

	"github.com/uptrace/bun"
)

// ListQuery is the query MessageRepo.List runs, for tests that check its
// plan.
func ListQuery(r *MessageRepo, f MessageFilter) *bun.SelectQuery {
	var msgs []Message
	return r.listQuery(&msgs, f)
}

// The repository methods below are used by tests only (the gateway and
// the CLI read counts from the statistics counters and look tokens up by
// hash), so they are compiled into the tests, not the product.

// RevokedSerials returns the serial numbers of all revoked certificates.
func (r *ClientRepo) RevokedSerials(ctx context.Context) ([]string, error) {
	return r.serials(ctx, ClientRevoked)
}

// ActiveSerials returns the serial numbers of all active certificates.
func (r *ClientRepo) ActiveSerials(ctx context.Context) ([]string, error) {
	return r.serials(ctx, ClientActive)
}

// Upsert adds the device or, if the pair exists, updates its name and
// status. On return d holds the stored row.
func (r *DeviceRepo) Upsert(ctx context.Context, d *Device) error {
	prepareDevice(d)
	q := r.db.NewInsert().Model(d)
	if Dialect(r.db) == DriverMySQL {
		q = q.On("DUPLICATE KEY UPDATE").
			Set("name = VALUES(name)").
			Set("status = VALUES(status)").
			Set("updated_at = VALUES(updated_at)")
	} else {
		q = q.On("CONFLICT (user_id, device_id) DO UPDATE").
			Set("name = EXCLUDED.name").
			Set("status = EXCLUDED.status").
			Set("updated_at = EXCLUDED.updated_at")
	}
	if _, err := execWrite(ctx, q); err != nil {
		return dbError(err, "upserting device %s/%s", d.UserID, d.DeviceID)
	}
	// The id and creation time of an updated row are not reported back
	// reliably by MySQL, so read the row.
	stored, err := r.Get(ctx, d.UserID, d.DeviceID)
	if err != nil {
		return err
	}
	*d = *stored
	return nil
}

// CountByStatus returns the number of messages per status; statuses without
// messages are absent.
func (r *MessageRepo) CountByStatus(ctx context.Context) (map[string]int64, error) {
	var rows []countRow
	err := r.db.NewSelect().Model((*Message)(nil)).
		ColumnExpr("status AS label").
		ColumnExpr("COUNT(*) AS total").
		Group("status").
		Scan(ctx, &rows)
	if err != nil {
		return nil, dbError(err, "counting messages by status")
	}
	return countMap(rows), nil
}

// CountByClient returns the number of messages per client, ordered by
// client id.
func (r *MessageRepo) CountByClient(ctx context.Context) ([]ClientCount, error) {
	var counts []ClientCount
	err := r.db.NewSelect().Model((*Message)(nil)).
		Column("client_id").
		ColumnExpr("COUNT(*) AS total").
		Group("client_id").
		Order("client_id").
		Scan(ctx, &counts)
	if err != nil {
		return nil, dbError(err, "counting messages by client")
	}
	return counts, nil
}

// CountSince returns the number of messages created at or after t.
func (r *MessageRepo) CountSince(ctx context.Context, t time.Time) (int64, error) {
	n, err := r.db.NewSelect().Model((*Message)(nil)).Where("created_at >= ?", utc(t)).Count(ctx)
	if err != nil {
		return 0, dbError(err, "counting messages since %s", t.UTC().Format(time.RFC3339))
	}
	return n, nil
}

// GetByJTI returns the token with the given JWT id or ErrNotFound.
func (r *RefreshTokenRepo) GetByJTI(ctx context.Context, jti string) (*RefreshToken, error) {
	t := new(RefreshToken)
	if err := r.db.NewSelect().Model(t).Where("jti = ?", jti).Scan(ctx); err != nil {
		return nil, dbError(err, "getting refresh token %s", jti)
	}
	return t, nil
}
