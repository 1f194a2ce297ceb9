package storage_test

import (
	"cmp"
	"database/sql"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

var (
	auditActors   = []string{"alice@example.com", "bob@example.com"}
	auditActions  = []string{"user.create", "cert.revoke", "message.decrypt"}
	auditTargets  = []string{"t1", "t2"}
	auditOutcomes = []string{storage.AuditSuccess, storage.AuditFailure, storage.AuditDenied}
)

// seedAudit inserts 60 entries covering every combination of two actors,
// three actions, two targets and three outcomes at varying times, several
// at the same instant (so the id must break ties), and returns them.
func seedAudit(t *testing.T, repo *storage.AuditRepo) []storage.AuditEntry {
	t.Helper()
	ctx := testContext(t)
	var all []storage.AuditEntry
	for i := range 60 {
		e := &storage.AuditEntry{
			// Every third entry shares its instant with the one before,
			// and times do not follow ids (entry 7 is older than entry 6).
			CreatedAt:  baseTime.Add(time.Duration((i/3)*2+(i%3)%2) * time.Second),
			Actor:      auditActors[i%len(auditActors)],
			Action:     auditActions[i%len(auditActions)],
			Target:     auditTargets[(i/2)%len(auditTargets)],
			Outcome:    auditOutcomes[(i/3)%len(auditOutcomes)],
			RemoteAddr: "192.0.2.1:4711",
		}
		if i%7 == 6 {
			e.CreatedAt = e.CreatedAt.Add(-3 * time.Second)
		}
		mustNoErr(t, repo.Insert(ctx, e), "Insert")
		all = append(all, *e)
	}
	slices.SortFunc(all, func(a, b storage.AuditEntry) int {
		return -cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return all
}

// auditFilters is every combination of the four equality filters, with and
// without a time window.
func auditFilters() []storage.AuditFilter {
	var out []storage.AuditFilter
	for mask := range 16 {
		for _, window := range []bool{false, true} {
			var f storage.AuditFilter
			if mask&1 != 0 {
				f.Actor = auditActors[0]
			}
			if mask&2 != 0 {
				f.Action = auditActions[1]
			}
			if mask&4 != 0 {
				f.Target = auditTargets[1]
			}
			if mask&8 != 0 {
				f.Outcome = storage.AuditFailure
			}
			if window {
				f.Since, f.Until = baseTime.Add(10*time.Second), baseTime.Add(31*time.Second)
			}
			out = append(out, f)
		}
	}
	return out
}

func auditMatches(f storage.AuditFilter, e *storage.AuditEntry) bool {
	return (f.Actor == "" || e.Actor == f.Actor) && (f.Action == "" || e.Action == f.Action) &&
		(f.Target == "" || e.Target == f.Target) && (f.Outcome == "" || e.Outcome == f.Outcome) &&
		(f.Since.IsZero() || !e.CreatedAt.Before(f.Since)) && (f.Until.IsZero() || e.CreatedAt.Before(f.Until))
}

func TestAuditListEveryFilterCombinationPagesInOrder(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		repo := storage.New(db).Audit
		all := seedAudit(t, repo)
		for _, f := range auditFilters() {
			var want []int64
			for i := range all {
				if auditMatches(f, &all[i]) {
					want = append(want, all[i].ID)
				}
			}
			for _, limit := range []int{1, 4, 1000} {
				var got []int64
				f.Limit, f.Before = limit, nil
				for pages := 0; ; pages++ {
					page, err := repo.List(ctx, f)
					mustNoErr(t, err, "List")
					if len(page) > limit || pages > len(all) {
						t.Fatalf("%+v: page of %d rows at limit %d (page %d)", f, len(page), limit, pages)
					}
					for _, e := range page {
						got = append(got, e.ID)
					}
					if len(page) < limit {
						break
					}
					key := page[len(page)-1].Key()
					f.Before = &key
				}
				if !slices.Equal(got, want) {
					t.Errorf("%+v: paged ids %v, want %v", f, got, want)
				}
			}
		}
		// The entry read back is the entry written.
		page, err := repo.List(ctx, storage.AuditFilter{Limit: 1})
		mustNoErr(t, err, "List")
		if len(page) != 1 || !reflect.DeepEqual(page[0], all[0]) {
			t.Errorf("newest entry = %+v, want %+v", page, all[0])
		}
	})
}

func TestAuditInsertDefaultsTimeAndRefusesUnknownOutcome(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		repo := storage.New(db).Audit
		e := &storage.AuditEntry{Actor: "cli", Action: "user.create", Outcome: storage.AuditSuccess, Details: ptr(`{"reason":"test"}`)}
		mustNoErr(t, repo.Insert(ctx, e), "Insert")
		if e.ID == 0 || time.Since(e.CreatedAt).Abs() > time.Minute {
			t.Errorf("inserted entry %+v: want an id and created_at now", e)
		}
		bad := &storage.AuditEntry{Actor: "cli", Action: "user.create", Outcome: "succeeded"}
		if err := repo.Insert(ctx, bad); err == nil || !strings.Contains(err.Error(), `outcome "succeeded"`) {
			t.Fatalf("Insert with outcome succeeded: %v, want a refusal naming it", err)
		}
		page, err := repo.List(ctx, storage.AuditFilter{})
		mustNoErr(t, err, "List")
		if len(page) != 1 || page[0].ID != e.ID || *page[0].Details != *e.Details {
			t.Fatalf("entries after a refused insert: %+v", page)
		}
	})
}

// TestAuditListPlansAreIndexRangeScans asks each database for its plan of
// every filter combination: the named index, no sort of the matches.
func TestAuditListPlansAreIndexRangeScans(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		seedAudit(t, storage.New(db).Audit)
		for _, f := range auditFilters() {
			f.Before = &storage.AuditKey{CreatedAt: baseTime.Add(20 * time.Second), ID: 30}
			index := storage.AuditIndex(f)
			plan := explainAudit(t, db, f)
			if storage.Dialect(db) == storage.DriverSQLite {
				if !strings.Contains(plan, "USING INDEX "+index+" (") || strings.Contains(plan, "TEMP B-TREE") {
					t.Errorf("%+v: plan %q, want a search of %s without a temporary b-tree", f, plan, index)
				}
				continue
			}
			if !strings.HasPrefix(plan, "range "+index+" ") || strings.Contains(plan, "filesort") {
				t.Errorf("%+v: plan %q, want a range scan of %s without filesort", f, plan, index)
			}
		}
	})
}

// explainAudit returns the plan of the query List runs for f's outcome (or
// for success, when f has none): SQLite's detail lines, or MariaDB's
// "type key extra".
func explainAudit(t *testing.T, db *bun.DB, f storage.AuditFilter) string {
	t.Helper()
	var q strings.Builder
	q.WriteString("SELECT * FROM audit_log ")
	if storage.Dialect(db) == storage.DriverSQLite {
		q.WriteString("INDEXED BY " + storage.AuditIndex(f))
	} else {
		q.WriteString("FORCE INDEX (" + storage.AuditIndex(f) + ")")
	}
	conds := []string{fmt.Sprintf("outcome = '%s'", cmp.Or(f.Outcome, storage.AuditSuccess))}
	for col, v := range map[string]string{"actor": f.Actor, "action": f.Action, "target": f.Target} {
		if v != "" {
			conds = append(conds, fmt.Sprintf("%s = '%s'", col, v))
		}
	}
	ts := func(t time.Time) string { return "'" + t.UTC().Format("2006-01-02 15:04:05.999999") + "'" }
	if !f.Since.IsZero() {
		conds = append(conds, "created_at >= "+ts(f.Since), "created_at < "+ts(f.Until))
	}
	conds = append(conds, "created_at <= "+ts(f.Before.CreatedAt), fmt.Sprintf("(created_at < %s OR id < %d)", ts(f.Before.CreatedAt), f.Before.ID))
	q.WriteString(" WHERE " + strings.Join(conds, " AND ") + " ORDER BY created_at DESC, id DESC LIMIT 51")

	if storage.Dialect(db) == storage.DriverSQLite {
		rows, err := db.QueryContext(testContext(t), "EXPLAIN QUERY PLAN "+q.String())
		mustNoErr(t, err, "EXPLAIN")
		defer rows.Close()
		var lines []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			mustNoErr(t, rows.Scan(&id, &parent, &unused, &detail), "scanning plan")
			lines = append(lines, detail)
		}
		return strings.Join(lines, "; ")
	}
	rows, err := db.QueryContext(testContext(t), "EXPLAIN "+q.String())
	mustNoErr(t, err, "EXPLAIN")
	defer rows.Close()
	cols, _ := rows.Columns()
	if !rows.Next() {
		t.Fatalf("EXPLAIN returned nothing")
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	mustNoErr(t, rows.Scan(ptrs...), "scanning plan")
	get := func(name string) string {
		return vals[slices.Index(cols, name)].String
	}
	return get("type") + " " + get("key") + " " + get("Extra")
}
