package storage_test

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

// newMessage returns the i-th test message, created i seconds after
// baseTime.
func newMessage(i int, client, status string) *storage.Message {
	return &storage.Message{
		MessageID:          fmt.Sprintf("00000000-0000-4000-8000-%012d", i),
		ClientID:           client,
		SenderNumberHash:   fmt.Sprintf("%064x", 1000+i),
		SenderNumberMasked: "+4915****0000",
		BodyEncrypted:      []byte{0, 1, 2, byte(i)},
		EncryptionKeyID:    "key-1",
		PayloadHash:        fmt.Sprintf("%064x", i),
		Status:             status,
		CreatedAt:          baseTime.Add(time.Duration(i) * time.Second),
	}
}

func TestMessageInsertAndGetRoundTripEveryField(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		repo := storage.New(db).Messages

		full := newMessage(1, "proxy-a", storage.MessageFailed)
		full.Metadata = json.RawMessage(`{"channel":"sms","priority":2}`)
		full.Attempts = 3
		full.LastError = ptr("gateway timeout")
		full.QueuedAt = baseTime.Add(-time.Minute)
		full.FailedAt = ptr(baseTime.Add(time.Minute).In(time.FixedZone("CET", 3600)))
		full.BodyEncrypted = bytes.Repeat([]byte{0xff, 0x00, 0x27, 0x5c}, 4096)

		minimal := newMessage(2, "proxy-a", "")
		minimal.CreatedAt = time.Time{}

		for _, m := range []*storage.Message{full, minimal} {
			mustNoErr(t, repo.Insert(ctx, m), "Insert")
			if m.ID == 0 {
				t.Fatalf("Insert did not set the id of %s", m.MessageID)
			}
			got, err := repo.GetByMessageID(ctx, m.MessageID)
			mustNoErr(t, err, "GetByMessageID")
			if got.Metadata != nil {
				if !jsonEqual(t, got.Metadata, m.Metadata) {
					t.Errorf("metadata = %s, want %s", got.Metadata, m.Metadata)
				}
				got.Metadata = m.Metadata
			}
			if !reflect.DeepEqual(got, m) {
				t.Errorf("GetByMessageID(%s) =\n%+v\nwant\n%+v", m.MessageID, got, m)
			}
		}
		if minimal.Status != storage.MessageQueued || minimal.CreatedAt.IsZero() || minimal.Metadata != nil {
			t.Errorf("Insert defaults: status %q, created_at %v, metadata %s", minimal.Status, minimal.CreatedAt, minimal.Metadata)
		}
		if loc := full.FailedAt.Location(); loc != time.UTC {
			t.Errorf("FailedAt location after Insert = %v, want UTC", loc)
		}
	})
}

func jsonEqual(t *testing.T, a, b json.RawMessage) bool {
	t.Helper()
	var va, vb any
	mustNoErr(t, json.Unmarshal(a, &va), "decoding json")
	mustNoErr(t, json.Unmarshal(b, &vb), "decoding json")
	return reflect.DeepEqual(va, vb)
}

func TestMessageErrors(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		repo := storage.New(db).Messages
		mustNoErr(t, repo.Insert(ctx, newMessage(1, "proxy-a", "")), "Insert")

		tests := []struct {
			name string
			err  error
			want error
		}{
			{"duplicate message id conflicts", repo.Insert(ctx, newMessage(1, "proxy-b", "")), storage.ErrConflict},
			{"unknown message id is not found", errOf(repo.GetByMessageID(ctx, "11111111-1111-4111-8111-111111111111")), storage.ErrNotFound},
			{"updating the body of an unknown row is not found", repo.UpdateBody(ctx, 999999, []byte{1}, "key-2"), storage.ErrNotFound},
		}
		for _, tt := range tests {
			if !errors.Is(tt.err, tt.want) {
				t.Errorf("%s: got %v, want %v", tt.name, tt.err, tt.want)
			}
		}
	})
}

// errOf drops the value of a (value, error) result.
func errOf[T any](_ T, err error) error {
	return err
}

func TestMessageListPagesThroughEveryMatchingRowOnce(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		repo := storage.New(db).Messages
		clients := []string{"proxy-a", "proxy-b", "proxy-c"}
		statuses := []string{storage.MessageQueued, storage.MessageProcessing, storage.MessageRetrying, storage.MessageDelivered, storage.MessageFailed}
		var all []*storage.Message
		for i := range 57 {
			m := newMessage(i, clients[i%len(clients)], statuses[i%len(statuses)])
			// Creation times out of id order (a row can be inserted after a
			// newer one, e.g. by another node) and shared by about three rows
			// each, so pages must break ties by id.
			m.CreatedAt = baseTime.Add(time.Duration((i*13)%20) * time.Second)
			mustNoErr(t, repo.Insert(ctx, m), "Insert")
			all = append(all, m)
		}
		// The list order: newest created_at first, then highest id.
		slices.SortFunc(all, func(a, b *storage.Message) int {
			if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
				return c
			}
			return cmp.Compare(b.ID, a.ID)
		})

		tests := []struct {
			name   string
			filter storage.MessageFilter
			match  func(*storage.Message) bool
		}{
			{"no filter", storage.MessageFilter{}, func(*storage.Message) bool { return true }},
			{"client", storage.MessageFilter{ClientID: "proxy-b"}, func(m *storage.Message) bool { return m.ClientID == "proxy-b" }},
			{"status", storage.MessageFilter{Status: storage.MessageDelivered}, func(m *storage.Message) bool { return m.Status == storage.MessageDelivered }},
			{"client and status", storage.MessageFilter{ClientID: "proxy-a", Status: storage.MessageQueued},
				func(m *storage.Message) bool { return m.ClientID == "proxy-a" && m.Status == storage.MessageQueued }},
			{"time window", storage.MessageFilter{Since: baseTime.Add(5 * time.Second), Until: baseTime.Add(15 * time.Second)},
				func(m *storage.Message) bool {
					return !m.CreatedAt.Before(baseTime.Add(5*time.Second)) && m.CreatedAt.Before(baseTime.Add(15*time.Second))
				}},
			{"until alone", storage.MessageFilter{Until: baseTime.Add(12 * time.Second)},
				func(m *storage.Message) bool { return m.CreatedAt.Before(baseTime.Add(12 * time.Second)) }},
			{"client and until", storage.MessageFilter{ClientID: "proxy-c", Until: baseTime.Add(12 * time.Second)},
				func(m *storage.Message) bool {
					return m.ClientID == "proxy-c" && m.CreatedAt.Before(baseTime.Add(12*time.Second))
				}},
			{"since in another zone", storage.MessageFilter{Since: baseTime.Add(15 * time.Second).In(time.FixedZone("PST", -8*3600))},
				func(m *storage.Message) bool { return !m.CreatedAt.Before(baseTime.Add(15 * time.Second)) }},
			{"nothing matches", storage.MessageFilter{ClientID: "nobody"}, func(*storage.Message) bool { return false }},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				var want []int64
				for _, m := range all {
					if tt.match(m) {
						want = append(want, m.ID)
					}
				}

				var got []int64
				f := tt.filter
				f.Limit = 7
				for page := 0; ; page++ {
					if page > len(all) {
						t.Fatal("pagination does not end")
					}
					msgs, err := repo.List(ctx, f)
					mustNoErr(t, err, "List")
					for _, m := range msgs {
						got = append(got, m.ID)
					}
					if len(msgs) < f.Limit {
						break
					}
					f.After = storage.PositionOf(&msgs[len(msgs)-1])
				}
				if !slices.Equal(got, want) {
					t.Errorf("paged ids = %v, want %v", got, want)
				}
			})
		}

		msgs, err := repo.List(ctx, storage.MessageFilter{})
		mustNoErr(t, err, "List without limit")
		if len(msgs) != storage.DefaultPageSize {
			t.Errorf("List without limit returned %d rows, want %d", len(msgs), storage.DefaultPageSize)
		}
	})
}

func TestMessageCounts(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		repo := storage.New(db).Messages

		total, err := repo.Total(ctx)
		mustNoErr(t, err, "Total")
		byStatus, err := repo.CountByStatus(ctx)
		mustNoErr(t, err, "CountByStatus")
		byClient, err := repo.CountByClient(ctx)
		mustNoErr(t, err, "CountByClient")
		if total != 0 || len(byStatus) != 0 || len(byClient) != 0 {
			t.Fatalf("empty table counts: total %d, by status %v, by client %v", total, byStatus, byClient)
		}

		for i, m := range []struct{ client, status string }{
			{"proxy-b", storage.MessageDelivered},
			{"proxy-a", storage.MessageDelivered},
			{"proxy-a", storage.MessageQueued},
			{"proxy-b", storage.MessageFailed},
			{"proxy-b", storage.MessageDelivered},
		} {
			mustNoErr(t, repo.Insert(ctx, newMessage(i, m.client, m.status)), "Insert")
		}

		total, err = repo.Total(ctx)
		mustNoErr(t, err, "Total")
		if total != 5 {
			t.Errorf("Total = %d, want 5", total)
		}
		byStatus, err = repo.CountByStatus(ctx)
		mustNoErr(t, err, "CountByStatus")
		if want := map[string]int64{storage.MessageDelivered: 3, storage.MessageQueued: 1, storage.MessageFailed: 1}; !maps.Equal(byStatus, want) {
			t.Errorf("CountByStatus = %v, want %v", byStatus, want)
		}
		byClient, err = repo.CountByClient(ctx)
		mustNoErr(t, err, "CountByClient")
		if want := []storage.ClientCount{{ClientID: "proxy-a", Total: 2}, {ClientID: "proxy-b", Total: 3}}; !slices.Equal(byClient, want) {
			t.Errorf("CountByClient = %v, want %v", byClient, want)
		}
		for _, tc := range []struct {
			since time.Time
			want  int64
		}{
			{baseTime.Add(-time.Hour), 5},
			{baseTime.Add(3 * time.Second), 2},
			{baseTime.Add(4*time.Second + time.Microsecond), 0},
		} {
			n, err := repo.CountSince(ctx, tc.since)
			mustNoErr(t, err, "CountSince")
			if n != tc.want {
				t.Errorf("CountSince(%v) = %d, want %d", tc.since, n, tc.want)
			}
		}
	})
}

func TestMessageUpdateStatusIsCompareAndSet(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		repo := storage.New(db).Messages
		m := newMessage(1, "proxy-a", storage.MessageQueued)
		mustNoErr(t, repo.Insert(ctx, m), "Insert")
		at := baseTime.Add(time.Hour)

		steps := []struct {
			name    string
			update  storage.StatusUpdate
			changed bool
			check   func(*storage.Message) error
		}{
			{"wrong expected status changes nothing",
				storage.StatusUpdate{MessageID: m.MessageID, From: storage.MessageProcessing, To: storage.MessageDelivered, At: at},
				false, expectStatus(storage.MessageQueued, 0)},
			{"unknown message changes nothing",
				storage.StatusUpdate{MessageID: "11111111-1111-4111-8111-111111111111", From: storage.MessageQueued, To: storage.MessageProcessing, At: at},
				false, expectStatus(storage.MessageQueued, 0)},
			{"queued to processing counts an attempt",
				storage.StatusUpdate{MessageID: m.MessageID, From: storage.MessageQueued, To: storage.MessageProcessing, AttemptsDelta: 1, At: at},
				true, expectStatus(storage.MessageProcessing, 1)},
			{"processing to retrying records the error",
				storage.StatusUpdate{MessageID: m.MessageID, From: storage.MessageProcessing, To: storage.MessageRetrying, LastError: "busy", At: at},
				true, func(got *storage.Message) error {
					if got.LastError == nil || *got.LastError != "busy" || !got.UpdatedAt.Equal(at) {
						return fmt.Errorf("last_error %v, updated_at %v", got.LastError, got.UpdatedAt)
					}
					return expectStatus(storage.MessageRetrying, 1)(got)
				}},
			{"retrying to delivered stamps delivered_at and keeps the error",
				storage.StatusUpdate{MessageID: m.MessageID, From: storage.MessageRetrying, To: storage.MessageDelivered, AttemptsDelta: 1, At: at.Add(time.Second)},
				true, func(got *storage.Message) error {
					if got.DeliveredAt == nil || !got.DeliveredAt.Equal(at.Add(time.Second)) || got.FailedAt != nil || got.LastError == nil {
						return fmt.Errorf("delivered_at %v, failed_at %v, last_error %v", got.DeliveredAt, got.FailedAt, got.LastError)
					}
					return expectStatus(storage.MessageDelivered, 2)(got)
				}},
		}
		for _, step := range steps {
			changed, err := repo.UpdateStatus(ctx, step.update)
			mustNoErr(t, err, step.name)
			if changed != step.changed {
				t.Fatalf("%s: changed = %v, want %v", step.name, changed, step.changed)
			}
			got, err := repo.GetByMessageID(ctx, m.MessageID)
			mustNoErr(t, err, "GetByMessageID")
			if err := step.check(got); err != nil {
				t.Fatalf("%s: %v", step.name, err)
			}
		}

		failed := newMessage(2, "proxy-a", storage.MessageProcessing)
		mustNoErr(t, repo.Insert(ctx, failed), "Insert")
		changed, err := repo.UpdateStatus(ctx, storage.StatusUpdate{MessageID: failed.MessageID, From: storage.MessageProcessing, To: storage.MessageFailed, LastError: "rejected"})
		mustNoErr(t, err, "UpdateStatus to failed")
		got, err := repo.GetByMessageID(ctx, failed.MessageID)
		mustNoErr(t, err, "GetByMessageID")
		if !changed || got.FailedAt == nil || got.DeliveredAt != nil || time.Since(*got.FailedAt).Abs() > time.Minute {
			t.Errorf("processing to failed: changed %v, failed_at %v, delivered_at %v", changed, got.FailedAt, got.DeliveredAt)
		}
	})
}

func expectStatus(status string, attempts int) func(*storage.Message) error {
	return func(m *storage.Message) error {
		if m.Status != status || m.Attempts != attempts {
			return fmt.Errorf("status %s with %d attempts, want %s with %d", m.Status, m.Attempts, status, attempts)
		}
		return nil
	}
}

func TestMessageUpdateStatusLosesNoUpdateUnderConcurrency(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		repo := storage.New(db).Messages
		const workers = 20

		t.Run("exactly one worker delivers", func(t *testing.T) {
			m := newMessage(1, "proxy-a", storage.MessageProcessing)
			mustNoErr(t, repo.Insert(ctx, m), "Insert")
			var (
				wg   sync.WaitGroup
				mu   sync.Mutex
				wins int
			)
			for range workers {
				wg.Go(func() {
					changed, err := repo.UpdateStatus(ctx, storage.StatusUpdate{
						MessageID: m.MessageID, From: storage.MessageProcessing, To: storage.MessageDelivered, AttemptsDelta: 1,
					})
					if err != nil {
						t.Errorf("UpdateStatus: %v", err)
					}
					if changed {
						mu.Lock()
						wins++
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			got, err := repo.GetByMessageID(ctx, m.MessageID)
			mustNoErr(t, err, "GetByMessageID")
			if wins != 1 || got.Attempts != 1 || got.Status != storage.MessageDelivered {
				t.Errorf("%d workers won, attempts %d, status %s; want exactly one win", wins, got.Attempts, got.Status)
			}
		})

		t.Run("read-modify-write retries count every transition", func(t *testing.T) {
			const perWorker = 5
			m := newMessage(2, "proxy-a", storage.MessageRetrying)
			mustNoErr(t, repo.Insert(ctx, m), "Insert")
			next := map[string]string{storage.MessageRetrying: storage.MessageProcessing, storage.MessageProcessing: storage.MessageRetrying}
			var wg sync.WaitGroup
			for range workers {
				wg.Go(func() {
					for done := 0; done < perWorker; {
						cur, err := repo.GetByMessageID(ctx, m.MessageID)
						if err != nil {
							t.Errorf("GetByMessageID: %v", err)
							return
						}
						changed, err := repo.UpdateStatus(ctx, storage.StatusUpdate{
							MessageID: m.MessageID, From: cur.Status, To: next[cur.Status], AttemptsDelta: 1,
						})
						if err != nil {
							t.Errorf("UpdateStatus: %v", err)
							return
						}
						if changed {
							done++
						}
					}
				})
			}
			wg.Wait()
			got, err := repo.GetByMessageID(ctx, m.MessageID)
			mustNoErr(t, err, "GetByMessageID")
			if got.Attempts != workers*perWorker {
				t.Errorf("attempts = %d after %d successful transitions", got.Attempts, workers*perWorker)
			}
		})
	})
}

func TestMessageKeyRotationBatches(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		repo := storage.New(db).Messages
		for i := range 11 {
			m := newMessage(i, "proxy-a", "")
			if i%4 == 0 {
				m.EncryptionKeyID = "key-0"
			}
			mustNoErr(t, repo.Insert(ctx, m), "Insert")
		}

		n, err := repo.CountByKeyID(ctx, "key-1")
		mustNoErr(t, err, "CountByKeyID")
		if n != 8 {
			t.Fatalf("CountByKeyID(key-1) = %d, want 8", n)
		}

		var after int64
		rotated := 0
		for {
			batch, err := repo.ListByKeyID(ctx, "key-1", after, 3)
			mustNoErr(t, err, "ListByKeyID")
			if len(batch) == 0 {
				break
			}
			for _, m := range batch {
				if m.ID <= after || m.EncryptionKeyID != "key-1" {
					t.Fatalf("batch after %d returned row %d under %s", after, m.ID, m.EncryptionKeyID)
				}
				after = m.ID
				mustNoErr(t, repo.UpdateBody(ctx, m.ID, append([]byte("v2:"), m.BodyEncrypted...), "key-2"), "UpdateBody")
				rotated++
			}
		}
		if rotated != 8 {
			t.Errorf("rotated %d messages, want 8", rotated)
		}
		for key, want := range map[string]int64{"key-0": 3, "key-1": 0, "key-2": 8} {
			n, err := repo.CountByKeyID(ctx, key)
			mustNoErr(t, err, "CountByKeyID")
			if n != want {
				t.Errorf("CountByKeyID(%s) = %d, want %d", key, n, want)
			}
		}
		got, err := repo.GetByMessageID(ctx, newMessage(1, "", "").MessageID)
		mustNoErr(t, err, "GetByMessageID")
		if want := []byte("v2:\x00\x01\x02\x01"); !bytes.Equal(got.BodyEncrypted, want) || got.EncryptionKeyID != "key-2" {
			t.Errorf("rotated body = %q under %s, want %q under key-2", got.BodyEncrypted, got.EncryptionKeyID, want)
		}
	})
}

// TestMessageListPlansWalkTheTimeIndexes checks with EXPLAIN that every
// filter shape of the portal's list, cursor included, reads an index in
// the list's order: no sort of the matching rows, whatever their number.
func TestMessageListPlansWalkTheTimeIndexes(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		repo := storage.New(db).Messages
		for i := range 30 {
			mustNoErr(t, repo.Insert(ctx, newMessage(i, fmt.Sprintf("proxy-%d", i%3), storage.MessageQueued)), "Insert")
		}
		after := storage.ListPosition{CreatedAt: baseTime.Add(20 * time.Second), ID: 21}
		cases := []struct {
			name  string
			f     storage.MessageFilter
			index string
		}{
			{"no filter", storage.MessageFilter{}, "idx_messages_created_at_id"},
			{"until", storage.MessageFilter{Until: baseTime.Add(10 * time.Second)}, "idx_messages_created_at_id"},
			{"since and until, deep", storage.MessageFilter{Since: baseTime, Until: baseTime.Add(25 * time.Second), After: after}, "idx_messages_created_at_id"},
			{"client", storage.MessageFilter{ClientID: "proxy-1", After: after}, "idx_messages_client_id_created_at_id"},
			{"client and until", storage.MessageFilter{ClientID: "proxy-1", Until: baseTime.Add(10 * time.Second)}, "idx_messages_client_id_created_at_id"},
			// Either index walks in list order; SQLite picks by its guesses.
			{"client and status", storage.MessageFilter{ClientID: "proxy-1", Status: storage.MessageFailed}, "idx_messages_client_id_created_at_id|idx_messages_status_created_at_id"},
			{"status and until", storage.MessageFilter{Status: storage.MessageFailed, Until: baseTime.Add(10 * time.Second), After: after}, "idx_messages_status_created_at_id"},
		}
		for _, c := range cases {
			plan := explainPlan(t, db, storage.ListQuery(repo, c.f).String())
			usesIndex := slices.ContainsFunc(strings.Split(c.index, "|"), func(i string) bool { return strings.Contains(plan, i) })
			if !usesIndex || strings.Contains(strings.ToLower(plan), "filesort") || strings.Contains(plan, "TEMP B-TREE") {
				t.Errorf("%s: plan %q, want a walk of %s without a sort", c.name, plan, c.index)
			}
		}
	})
}

// explainPlan is the query plan of query as one line: MariaDB's key and
// Extra columns, or SQLite's plan details.
func explainPlan(t *testing.T, db *bun.DB, query string) string {
	t.Helper()
	if storage.Dialect(db) == storage.DriverMySQL {
		var rows []map[string]any
		if err := db.NewRaw("EXPLAIN "+query).Scan(testContext(t), &rows); err != nil {
			t.Fatalf("EXPLAIN %s: %v", query, err)
		}
		var parts []string
		for _, r := range rows {
			parts = append(parts, fmt.Sprintf("key=%s extra=%s", r["key"], r["Extra"]))
		}
		return strings.Join(parts, "; ")
	}
	var details []string
	rows, err := db.QueryContext(testContext(t), "EXPLAIN QUERY PLAN "+query)
	if err != nil {
		t.Fatalf("EXPLAIN QUERY PLAN %s: %v", query, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		details = append(details, detail)
	}
	return strings.Join(details, "; ")
}
