package broker_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

func newAuditLog(db *bun.DB) *broker.AuditLog {
	return &broker.AuditLog{Store: storage.New(db), CursorKey: []byte(strings.Repeat("a", 32))}
}

func writeAudit(t *testing.T, store *storage.Store, actor, action, target, outcome, details string) {
	t.Helper()
	if err := broker.Audit(context.Background(), store, broker.Actor{Name: actor, RemoteAddr: "192.0.2.7"}, action, target, outcome, details); err != nil {
		t.Fatal(err)
	}
}

// TestAuditListRefusesMalformedQueries tries every parameter at and just
// past its limits.
func TestAuditListRefusesMalformedQueries(t *testing.T) {
	db := storagetest.OpenSQLite(t)
	log := newAuditLog(db)
	writeAudit(t, log.Store, "a", "x.y", "t", storage.AuditSuccess, "")
	writeAudit(t, log.Store, "a", "x.y", "t", storage.AuditSuccess, "")
	page, err := log.List(context.Background(), broker.AuditQuery{Actor: "a", Limit: "1"})
	if err != nil || page.NextCursor == "" {
		t.Fatalf("first page = %+v, %v; want a cursor", page, err)
	}
	cursor := page.NextCursor
	tampered := []byte(cursor)
	tampered[3] ^= 1
	portalCursor := func() string {
		// A valid portal cursor, under the same key, is not an audit cursor.
		p := &broker.Portal{Store: log.Store, CursorKey: log.CursorKey}
		u := &storage.User{Email: "root@example.com", PasswordHash: "x", Role: storage.RoleAdmin, IsActive: true}
		if err := log.Store.Users.Create(context.Background(), u); err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			if err := log.Store.Messages.Insert(context.Background(), &storage.Message{
				MessageID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), ClientID: "p", SenderNumberHash: "h", SenderNumberMasked: "m",
				BodyEncrypted: []byte{1}, EncryptionKeyID: "k", PayloadHash: fmt.Sprint(i),
			}); err != nil {
				t.Fatal(err)
			}
		}
		pg, err := p.ListMessages(context.Background(), &broker.Principal{User: u}, broker.MessageQuery{Limit: "1"})
		if err != nil || pg.NextCursor == "" {
			t.Fatalf("portal page: %+v, %v", pg, err)
		}
		return pg.NextCursor
	}()

	long := func(n int, s string) string { return strings.Repeat(s, n) }
	tests := []struct {
		name string
		q    broker.AuditQuery
		code string // "" = accepted
	}{
		{"empty", broker.AuditQuery{}, ""},
		{"actor of 255", broker.AuditQuery{Actor: long(255, "a")}, ""},
		{"actor of 255 two-byte characters", broker.AuditQuery{Actor: long(255, "é")}, ""},
		{"actor of 256", broker.AuditQuery{Actor: long(256, "a")}, "invalid_actor"},
		{"actor not UTF-8", broker.AuditQuery{Actor: "a\xff"}, "invalid_actor"},
		{"action of 64", broker.AuditQuery{Action: long(64, "a")}, ""},
		{"action of 65", broker.AuditQuery{Action: long(65, "a")}, "invalid_action"},
		{"target of 255", broker.AuditQuery{Target: long(255, "t")}, ""},
		{"target of 256", broker.AuditQuery{Target: long(256, "t")}, "invalid_target"},
		{"target not UTF-8", broker.AuditQuery{Target: "\xc3"}, "invalid_target"},
		{"outcome success", broker.AuditQuery{Outcome: "success"}, ""},
		{"outcome failure", broker.AuditQuery{Outcome: "failure"}, ""},
		{"outcome denied", broker.AuditQuery{Outcome: "denied"}, ""},
		{"outcome in capitals", broker.AuditQuery{Outcome: "Success"}, "invalid_outcome"},
		{"outcome unknown", broker.AuditQuery{Outcome: "ok"}, "invalid_outcome"},
		{"since RFC 3339", broker.AuditQuery{Since: "2026-01-02T15:04:05Z"}, ""},
		{"since with offset", broker.AuditQuery{Since: "2026-01-02T15:04:05+02:00"}, ""},
		{"since a date", broker.AuditQuery{Since: "2026-01-02"}, "invalid_since"},
		{"until garbage", broker.AuditQuery{Until: "yesterday"}, "invalid_until"},
		{"since equals until", broker.AuditQuery{Since: "2026-01-02T15:04:05Z", Until: "2026-01-02T15:04:05Z"}, ""},
		{"since a second after until", broker.AuditQuery{Since: "2026-01-02T15:04:06Z", Until: "2026-01-02T15:04:05Z"}, "invalid_time_range"},
		{"since after until in other zones", broker.AuditQuery{Since: "2026-01-02T16:04:05+01:00", Until: "2026-01-02T15:04:04Z"}, "invalid_time_range"},
		{"limit 1", broker.AuditQuery{Limit: "1"}, ""},
		{"limit 200", broker.AuditQuery{Limit: "200"}, ""},
		{"limit 0200", broker.AuditQuery{Limit: "0200"}, ""},
		{"limit 0", broker.AuditQuery{Limit: "0"}, "invalid_limit"},
		{"limit 201", broker.AuditQuery{Limit: "201"}, "invalid_limit"},
		{"limit negative", broker.AuditQuery{Limit: "-1"}, "invalid_limit"},
		{"limit with sign", broker.AuditQuery{Limit: "+5"}, "invalid_limit"},
		{"limit with space", broker.AuditQuery{Limit: " 5"}, "invalid_limit"},
		{"limit huge", broker.AuditQuery{Limit: "99999999999999999999999"}, "invalid_limit"},
		{"cursor as issued", broker.AuditQuery{Actor: "a", Cursor: cursor}, ""},
		{"cursor with another page size", broker.AuditQuery{Actor: "a", Limit: "7", Cursor: cursor}, ""},
		{"cursor for other filters", broker.AuditQuery{Actor: "b", Cursor: cursor}, "invalid_cursor"},
		{"cursor without its filter", broker.AuditQuery{Cursor: cursor}, "invalid_cursor"},
		{"cursor tampered", broker.AuditQuery{Actor: "a", Cursor: string(tampered)}, "invalid_cursor"},
		{"cursor cut short", broker.AuditQuery{Actor: "a", Cursor: cursor[:len(cursor)-1]}, "invalid_cursor"},
		{"cursor with padding", broker.AuditQuery{Actor: "a", Cursor: cursor + "="}, "invalid_cursor"},
		{"cursor not base64", broker.AuditQuery{Actor: "a", Cursor: "!!!!"}, "invalid_cursor"},
		{"cursor with a line break", broker.AuditQuery{Actor: "a", Cursor: cursor[:4] + "\n" + cursor[4:]}, "invalid_cursor"},
		{"cursor of the portal", broker.AuditQuery{Cursor: portalCursor}, "invalid_cursor"},
	}
	for _, tt := range tests {
		_, err := log.List(context.Background(), tt.q)
		_, exportErr := log.Export(tt.q)
		if tt.code == "" {
			if err != nil || exportErr != nil {
				t.Errorf("%s: List %v, Export %v; want accepted", tt.name, err, exportErr)
			}
			continue
		}
		for _, e := range []error{err, exportErr} {
			if ae, ok := apperr.As(e); !ok || ae.Kind != apperr.Invalid || ae.Code != tt.code {
				t.Errorf("%s: error %v, want Invalid %s", tt.name, e, tt.code)
			}
		}
	}
	// A key change invalidates every cursor.
	other := &broker.AuditLog{Store: log.Store, CursorKey: []byte(strings.Repeat("b", 32))}
	_, err = other.List(context.Background(), broker.AuditQuery{Actor: "a", Cursor: cursor})
	wantKind(t, err, apperr.Invalid, "invalid_cursor")
}

func TestAuditListFiltersAndPagesNewestFirst(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		log := newAuditLog(db)
		for i := range 9 {
			outcome := []string{storage.AuditSuccess, storage.AuditFailure, storage.AuditDenied}[i%3]
			writeAudit(t, log.Store, fmt.Sprintf("admin-%d@example.com", i%2), "user.create", fmt.Sprintf("user %d", i), outcome, "")
		}
		all, err := log.List(ctx, broker.AuditQuery{})
		if err != nil || len(all.Items) != 9 || all.NextCursor != "" {
			t.Fatalf("whole list = %d items, cursor %q, %v", len(all.Items), all.NextCursor, err)
		}
		for i := 1; i < len(all.Items); i++ {
			a, b := all.Items[i-1], all.Items[i]
			if a.CreatedAt.Before(b.CreatedAt) || a.CreatedAt.Equal(b.CreatedAt) && a.ID < b.ID {
				t.Fatalf("not newest first at %d: %+v then %+v", i, a, b)
			}
		}
		if it := all.Items[0]; it.Target != "user 8" || it.Actor != "admin-0@example.com" || it.RemoteAddr != "192.0.2.7" || it.Outcome != storage.AuditDenied || it.Details != nil {
			t.Fatalf("newest item = %+v", it)
		}

		q := broker.AuditQuery{Actor: "admin-0@example.com", Outcome: storage.AuditSuccess, Limit: "1"}
		var got []string
		for range 10 {
			page, err := log.List(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range page.Items {
				got = append(got, it.Target)
			}
			if q.Cursor = page.NextCursor; q.Cursor == "" {
				break
			}
		}
		// admin-0 wrote users 0, 2, 4, 6, 8; success are users 0 and 6.
		if !slices.Equal(got, []string{"user 6", "user 0"}) {
			t.Fatalf("admin-0's successes, page by page = %v", got)
		}

		window := broker.AuditQuery{
			Since: all.Items[6].CreatedAt.Format(time.RFC3339Nano),
			Until: all.Items[1].CreatedAt.Format(time.RFC3339Nano),
		}
		page, err := log.List(ctx, window)
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, it := range page.Items {
			ids = append(ids, it.ID)
		}
		want := []int64{all.Items[2].ID, all.Items[3].ID, all.Items[4].ID, all.Items[5].ID, all.Items[6].ID}
		if !slices.Equal(ids, want) {
			t.Fatalf("since item 6, until item 1 = %v, want %v (since included, until excluded)", ids, want)
		}
	})
}

func TestAuditCSVExportStreamsEveryPageDefused(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		log := newAuditLog(db)
		log.ExportPageSize = 2
		cells := []string{"=HYPERLINK(\"http://x\")", "+1", "-2", "@SUM(A1)", "\tTAB", "plain, with \"quotes\"\nand a line", "a=b"}
		for i, c := range cells {
			writeAudit(t, log.Store, c, "test.csv", fmt.Sprint(i), storage.AuditSuccess, c)
		}
		writeAudit(t, log.Store, "other", "test.csv", "x", storage.AuditFailure, "")
		exp, err := log.Export(broker.AuditQuery{Action: "test.csv", Outcome: storage.AuditSuccess, Limit: "1"})
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := exp.WriteCSV(context.Background(), &out); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(out.String(), "id,created_at,actor,action,target,outcome,remote_addr,details\r\n") {
			t.Fatalf("CSV starts %q", out.String()[:min(out.Len(), 80)])
		}
		rows, err := csv.NewReader(&out).ReadAll()
		if err != nil {
			t.Fatalf("the export is not RFC 4180 CSV: %v", err)
		}
		if len(rows) != 1+len(cells) {
			t.Fatalf("%d rows, want the header and %d entries (the limit does not cut an export)", len(rows), len(cells))
		}
		want := []string{"'=HYPERLINK(\"http://x\")", "'+1", "'-2", "'@SUM(A1)", "'\tTAB", "plain, with \"quotes\"\nand a line", "a=b"}
		for i, row := range rows[1:] {
			// Newest first: the last written comes first.
			w := want[len(want)-1-i]
			if row[2] != w || row[7] != w || row[3] != "test.csv" || row[5] != storage.AuditSuccess || row[6] != "192.0.2.7" {
				t.Errorf("row %d = %q, want actor and details %q", i, row, w)
			}
			if _, err := strconv.ParseInt(row[0], 10, 64); err != nil {
				t.Errorf("row %d id %q", i, row[0])
			}
			if _, err := time.Parse(time.RFC3339Nano, row[1]); err != nil {
				t.Errorf("row %d created_at %q: %v", i, row[1], err)
			}
		}
	})
}
