package storage

import (
	"context"

	"github.com/uptrace/bun"
)

// AuditRepo appends to and reads the audit_log table.
type AuditRepo struct {
	db *bun.DB
}

// AuditFilter selects audit entries for AuditRepo.List. Zero fields do not
// filter.
type AuditFilter struct {
	Actor  string
	Action string
	// BeforeID is the keyset cursor: the last (smallest) id of the previous
	// page; only older entries are returned.
	BeforeID int64
	// Limit is the page size; see DefaultPageSize and MaxPageSize.
	Limit int
}

// Insert appends an entry and sets e.ID; an unset CreatedAt defaults to now.
func (r *AuditRepo) Insert(ctx context.Context, e *AuditEntry) error {
	e.CreatedAt = orTime(e.CreatedAt, now())
	if _, err := execWrite(ctx, r.db.NewInsert().Model(e)); err != nil {
		return dbError(err, "inserting audit entry %s by %s", e.Action, e.Actor)
	}
	return nil
}

// List returns one page of entries matching f, newest first.
func (r *AuditRepo) List(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	var entries []AuditEntry
	q := r.db.NewSelect().Model(&entries)
	if f.Actor != "" {
		q = q.Where("actor = ?", f.Actor)
	}
	if f.Action != "" {
		q = q.Where("action = ?", f.Action)
	}
	if f.BeforeID > 0 {
		q = q.Where("id < ?", f.BeforeID)
	}
	if err := q.OrderExpr("id DESC").Limit(pageSize(f.Limit)).Scan(ctx); err != nil {
		return nil, dbError(err, "listing audit entries")
	}
	return entries, nil
}
