package broker_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"slices"
	"testing"

	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

// TestAuditListPagesHoldExactlyTheLimit: five entries in pages of two come
// as 2, 2 and 1 items, a cursor after each full page only.
func TestAuditListPagesHoldExactlyTheLimit(t *testing.T) {
	log := newAuditLog(storagetest.OpenSQLite(t))
	for i := range 5 {
		writeAudit(t, log.Store, "admin@example.com", "user.create", fmt.Sprintf("user %d", i), storage.AuditSuccess, "")
	}
	q := broker.AuditQuery{Limit: "2"}
	var sizes []int
	var targets []string
	for range 5 {
		page, err := log.List(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(page.Items))
		for _, it := range page.Items {
			targets = append(targets, it.Target)
		}
		if q.Cursor = page.NextCursor; q.Cursor == "" {
			break
		}
	}
	if !slices.Equal(sizes, []int{2, 2, 1}) || !slices.Equal(targets, []string{"user 4", "user 3", "user 2", "user 1", "user 0"}) {
		t.Fatalf("pages of %v items: %v, want pages of 2, 2 and 1 newest first", sizes, targets)
	}
}

// TestAuditCSVExportWithTheDefaultPageSize exports every matching entry
// when no export page size is configured.
func TestAuditCSVExportWithTheDefaultPageSize(t *testing.T) {
	log := newAuditLog(storagetest.OpenSQLite(t))
	for i := range 3 {
		writeAudit(t, log.Store, "admin@example.com", "user.create", fmt.Sprintf("user %d", i), storage.AuditSuccess, "")
	}
	exp, err := log.Export(broker.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := exp.WriteCSV(context.Background(), &out); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&out).ReadAll()
	if err != nil || len(rows) != 4 || rows[1][4] != "user 2" || rows[3][4] != "user 0" {
		t.Fatalf("export = %q, %v; want the header and three entries, newest first", rows, err)
	}
}
