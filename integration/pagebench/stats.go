package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/msgbroker/caddy-msgbroker/integration/internal/bench"
	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/storage"
)

// The stats and audit modes run on either database: they time
// broker.CollectAdminStats (GET /admin/stats) and broker.AuditLog.List
// (GET /admin/audit) on a throwaway database holding -messages messages or
// audit entries. The product target for the statistics is p99 ≤ 50 ms at
// 1,000,000 messages.

// openBench opens a throwaway database of driver with the schema and
// returns it with a function that removes it.
func openBench(ctx context.Context, driver, serverDSN string) (*bun.DB, func(), error) {
	var dsn string
	var drop func()
	switch driver {
	case storage.DriverMySQL:
		var err error
		if dsn, drop, err = bench.CreateDatabase(serverDSN, "msgbroker_pagebench_"); err != nil {
			return nil, nil, err
		}
	case storage.DriverSQLite:
		dir, err := os.MkdirTemp("", "pagebench")
		if err != nil {
			return nil, nil, err
		}
		dsn, drop = filepath.Join(dir, "msgbroker.db"), func() { _ = os.RemoveAll(dir) }
	default:
		return nil, nil, fmt.Errorf("unknown driver %q", driver)
	}
	db, err := storage.Open(ctx, storage.Config{Driver: driver, DSN: dsn})
	if err != nil {
		drop()
		return nil, nil, err
	}
	if _, err := storage.Migrate(ctx, db); err != nil {
		_ = db.Close()
		drop()
		return nil, nil, err
	}
	return db, func() { _ = db.Close(); drop() }, nil
}

func runStats(ctx context.Context, driver, serverDSN string, n, runs int) error {
	db, done, err := openBench(ctx, driver, serverDSN)
	if err != nil {
		return err
	}
	defer done()
	store := storage.New(db)
	start := time.Now()
	if err := loadForStats(ctx, store, n); err != nil {
		return err
	}
	fmt.Printf("%s: loaded %d messages (40 days, 20 clients, counters kept by InsertMany) in %s\n", driver, n, time.Since(start).Round(time.Second))
	var last broker.AdminStats
	lat, err := timeRuns(runs, func() error {
		last, err = broker.CollectAdminStats(ctx, store, time.Now())
		return err
	})
	if err != nil {
		return err
	}
	fmt.Printf("CollectAdminStats: p50 %s p99 %s max %s over %d runs\n", lat[0], lat[1], lat[2], runs)
	fmt.Printf("  messages %+v\n  latency %d deliveries p50 %.1f ms p95 %.1f ms\n",
		last.Messages, last.Latency.Deliveries, deref(last.Latency.P50Ms), deref(last.Latency.P95Ms))
	lat, err = timeRuns(runs, func() error {
		_, err := broker.CollectStats(ctx, store, time.Now())
		return err
	})
	if err != nil {
		return err
	}
	fmt.Printf("CollectStats (CLI): p50 %s p99 %s max %s\n", lat[0], lat[1], lat[2])
	return nil
}

func deref(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

// loadForStats inserts n messages, 2,000 per InsertMany, created over the
// last 40 days: 80 % delivered 20 ms to 20 s after being queued
// (log-uniform), 8 % failed, the rest queued, processing or retrying.
func loadForStats(ctx context.Context, store *storage.Store, n int) error {
	const batch = 2000
	span := 40 * 24 * time.Hour
	base := time.Now().Add(-span)
	step := span / time.Duration(n)
	hash := strings.Repeat("0", 64)
	body := make([]byte, 64)
	for i := 0; i < n; i += batch {
		msgs := make([]*storage.Message, 0, batch)
		for j := i; j < min(i+batch, n); j++ {
			at := base.Add(time.Duration(j) * step)
			m := &storage.Message{
				MessageID: uuid.NewString(), ClientID: fmt.Sprintf("client-%02d", rand.IntN(clients)),
				SenderNumberHash: hash, SenderNumberMasked: "+4915****0000", BodyEncrypted: body,
				EncryptionKeyID: "k1", PayloadHash: hash, QueuedAt: at, CreatedAt: at, UpdatedAt: at,
			}
			switch r := rand.IntN(100); {
			case r < 80:
				d := at.Add(time.Duration(20 * math.Pow(1000, rand.Float64()) * float64(time.Millisecond)))
				m.Status, m.DeliveredAt = storage.MessageDelivered, &d
			case r < 88:
				f := at.Add(time.Minute)
				m.Status, m.FailedAt = storage.MessageFailed, &f
			default:
				m.Status = statuses[rand.IntN(3)]
			}
			msgs = append(msgs, m)
		}
		if err := store.Messages.InsertMany(ctx, msgs); err != nil {
			return err
		}
	}
	return nil
}

func runAudit(ctx context.Context, driver, serverDSN string, n, runs int) error {
	db, done, err := openBench(ctx, driver, serverDSN)
	if err != nil {
		return err
	}
	defer done()
	start := time.Now()
	if err := loadAudit(ctx, db, n); err != nil {
		return err
	}
	fmt.Printf("%s: loaded %d audit entries in %s\n", driver, n, time.Since(start).Round(time.Second))
	log := &broker.AuditLog{Store: storage.New(db), CursorKey: []byte(strings.Repeat("c", 32))}
	since := time.Now().Add(-20 * 24 * time.Hour).UTC().Format(time.RFC3339)
	until := time.Now().Add(-10 * 24 * time.Hour).UTC().Format(time.RFC3339)
	cases := []struct {
		name string
		q    broker.AuditQuery
	}{
		{"no filter", broker.AuditQuery{}},
		{"outcome=denied", broker.AuditQuery{Outcome: storage.AuditDenied}},
		{"actor", broker.AuditQuery{Actor: "admin-3@example.com"}},
		{"action", broker.AuditQuery{Action: "user.create"}},
		{"target", broker.AuditQuery{Target: "client-07"}},
		{"actor+action+target", broker.AuditQuery{Actor: "admin-3@example.com", Action: "certificate.issue", Target: "client-07"}},
		{"all four", broker.AuditQuery{Actor: "admin-3@example.com", Action: "certificate.issue", Target: "client-07", Outcome: storage.AuditFailure}},
		{"since+until", broker.AuditQuery{Since: since, Until: until}},
		{"actor+since+until", broker.AuditQuery{Actor: "admin-3@example.com", Since: since, Until: until}},
	}
	fmt.Printf("%-22s %-6s %10s %10s\n", "filter", "page", "p50", "p99")
	for _, c := range cases {
		lat, err := timeRuns(runs, func() error { _, err := log.List(ctx, c.q); return err })
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		fmt.Printf("%-22s %-6s %10s %10s\n", c.name, "first", lat[0], lat[1])
		q := c.q
		q.Limit = "200"
		for range 50 {
			page, err := log.List(ctx, q)
			if err != nil {
				return err
			}
			q.Cursor = page.NextCursor
			if q.Cursor == "" {
				break
			}
		}
		if q.Cursor == "" {
			fmt.Printf("%-22s %-6s %10s\n", c.name, "10000", "(fewer rows)")
			continue
		}
		q.Limit = ""
		lat, err = timeRuns(runs, func() error { _, err := log.List(ctx, q); return err })
		if err != nil {
			return err
		}
		fmt.Printf("%-22s %-6s %10s %10s\n", c.name, "10000", lat[0], lat[1])
	}
	return nil
}

// loadAudit inserts n entries, 2,000 per statement, over the last 40 days:
// 10 actors, 8 actions, 50 targets, 90 % success, 8 % failure, 2 % denied.
func loadAudit(ctx context.Context, db *bun.DB, n int) error {
	const batch = 2000
	actions := []string{"user.create", "user.delete", "certificate.issue", "certificate.revoke", "message.decrypt", "keys.add", "user.password_change", "user.lockout"}
	span := 40 * 24 * time.Hour
	base := time.Now().Add(-span)
	step := span / time.Duration(n)
	for i := 0; i < n; i += batch {
		entries := make([]storage.AuditEntry, 0, batch)
		for j := i; j < min(i+batch, n); j++ {
			outcome := storage.AuditSuccess
			switch r := rand.IntN(100); {
			case r < 2:
				outcome = storage.AuditDenied
			case r < 10:
				outcome = storage.AuditFailure
			}
			entries = append(entries, storage.AuditEntry{
				CreatedAt: base.Add(time.Duration(j) * step).UTC(), Actor: fmt.Sprintf("admin-%d@example.com", rand.IntN(10)),
				Action: actions[rand.IntN(len(actions))], Target: fmt.Sprintf("client-%02d", rand.IntN(50)),
				Outcome: outcome, RemoteAddr: "192.0.2.1",
			})
		}
		if _, err := db.NewInsert().Model(&entries).Exec(ctx); err != nil {
			return err
		}
	}
	return nil
}

// timeRuns runs fn runs times and returns p50, p99 and the maximum.
func timeRuns(runs int, fn func() error) ([3]time.Duration, error) {
	lat := make([]time.Duration, 0, runs)
	for range runs {
		t0 := time.Now()
		if err := fn(); err != nil {
			return [3]time.Duration{}, err
		}
		lat = append(lat, time.Since(t0))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	r := func(d time.Duration) time.Duration { return d.Round(10 * time.Microsecond) }
	return [3]time.Duration{r(lat[len(lat)/2]), r(lat[len(lat)*99/100]), r(lat[len(lat)-1])}, nil
}
