package storage

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/uptrace/bun"
)

// AuditRepo appends to and reads the audit_log table.
type AuditRepo struct {
	db *bun.DB
}

// AuditOutcomes are the outcomes an entry may have, in the order List
// reads them.
var AuditOutcomes = []string{AuditSuccess, AuditFailure, AuditDenied}

// AuditFilter selects audit entries for AuditRepo.List. Zero fields do not
// filter.
type AuditFilter struct {
	Actor  string
	Action string
	Target string
	// Outcome is one of AuditOutcomes.
	Outcome string
	// Since keeps entries created at or after it.
	Since time.Time
	// Until keeps entries created before it.
	Until time.Time
	// Before is the keyset cursor: the last entry of the previous page;
	// only entries after it in the list's order (older, or as old with a
	// smaller id) are returned.
	Before *AuditKey
	// Limit is the page size; see DefaultPageSize and MaxPageSize.
	Limit int
}

// AuditKey is an entry's position in the list's order: created_at
// descending, then id descending.
type AuditKey struct {
	CreatedAt time.Time
	ID        int64
}

// Key is e's position in the list's order.
func (e *AuditEntry) Key() AuditKey {
	return AuditKey{CreatedAt: e.CreatedAt, ID: e.ID}
}

// Insert appends an entry and sets e.ID; an unset CreatedAt defaults to now.
// An outcome other than AuditOutcomes is refused: List reads outcome by
// outcome, so an entry with another one would never be listed.
func (r *AuditRepo) Insert(ctx context.Context, e *AuditEntry) error {
	if !slices.Contains(AuditOutcomes, e.Outcome) {
		return fmt.Errorf("inserting audit entry %s by %s: outcome %q is not one of %v", e.Action, e.Actor, e.Outcome, AuditOutcomes)
	}
	e.CreatedAt = orTime(e.CreatedAt, now())
	if _, err := execWrite(ctx, r.db.NewInsert().Model(e)); err != nil {
		return dbError(err, "inserting audit entry %s by %s", e.Action, e.Actor)
	}
	return nil
}

// List returns one page of entries matching f, newest first (created_at,
// then id, descending).
//
// Every combination of actor, action and target has an index with exactly
// those columns followed by (outcome, created_at, id) — migration 0005 —
// so a query for one outcome is a single index range scan that starts at
// the cursor or at until and stops after a page. Without an outcome filter
// the page is read from each outcome's range and merged: three range scans
// of at most a page each, never a sort of the matching rows.
func (r *AuditRepo) List(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	outcomes := AuditOutcomes
	if f.Outcome != "" {
		outcomes = []string{f.Outcome}
	}
	limit := int(pageSize(f.Limit))
	var entries []AuditEntry
	for _, outcome := range outcomes {
		part, err := r.list(ctx, f, outcome, limit)
		if err != nil {
			return nil, err
		}
		entries = append(entries, part...)
	}
	slices.SortFunc(entries, func(a, b AuditEntry) int { return -compareKeys(a.Key(), b.Key()) })
	return entries[:min(len(entries), limit)], nil
}

// compareKeys orders keys by time, then id.
func compareKeys(a, b AuditKey) int {
	return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
}

func (r *AuditRepo) list(ctx context.Context, f AuditFilter, outcome string, limit int) ([]AuditEntry, error) {
	var entries []AuditEntry
	q := r.db.NewSelect().Model(&entries)
	// Name the index: MariaDB would otherwise often take the primary key
	// backwards and filter, and SQLite may take a shorter prefix and sort.
	if Dialect(r.db) == DriverSQLite {
		q = q.ModelTableExpr("?TableName AS ?TableAlias INDEXED BY " + AuditIndex(f))
	} else {
		q = q.ModelTableExpr("?TableName AS ?TableAlias FORCE INDEX (" + AuditIndex(f) + ")")
	}
	if f.Actor != "" {
		q = q.Where("actor = ?", f.Actor)
	}
	if f.Action != "" {
		q = q.Where("action = ?", f.Action)
	}
	if f.Target != "" {
		q = q.Where("target = ?", f.Target)
	}
	q = q.Where("outcome = ?", outcome)
	if !f.Since.IsZero() {
		q = q.Where("created_at >= ?", utc(f.Since))
	}
	// One upper bound only, the tighter: given two, SQLite may start the
	// range scan at until and walk down to the cursor (a page 10,000 deep
	// took 11 ms instead of 0.8). A cursor before until implies it; a
	// cursor at or after until is implied by it.
	b := f.Before
	if b != nil && !f.Until.IsZero() && !utc(b.CreatedAt).Before(utc(f.Until)) {
		b = nil
	}
	if !f.Until.IsZero() && b == nil {
		q = q.Where("created_at < ?", utc(f.Until))
	}
	if b != nil {
		// The first condition bounds the range scan; the second only
		// decides among entries of the same instant.
		at := utc(b.CreatedAt)
		q = q.Where("created_at <= ?", at).WhereGroup(" AND ", func(q *bun.SelectQuery) *bun.SelectQuery {
			return q.Where("created_at < ?", at).WhereOr("id < ?", b.ID)
		})
	}
	if err := q.OrderExpr("created_at DESC, id DESC").Limit(int64(limit)).Scan(ctx); err != nil {
		return nil, dbError(err, "listing audit entries")
	}
	return entries, nil
}

// AuditIndex names the index that serves f: idx_audit_ followed by a for
// actor, c for action and t for target when set, then _o.
func AuditIndex(f AuditFilter) string {
	var b strings.Builder
	b.WriteString("idx_audit_")
	for _, c := range []struct {
		set    bool
		letter string
	}{{f.Actor != "", "a"}, {f.Action != "", "c"}, {f.Target != "", "t"}} {
		if c.set {
			b.WriteString(c.letter)
		}
	}
	if b.Len() > len("idx_audit_") {
		b.WriteString("_")
	}
	b.WriteString("o")
	return b.String()
}
