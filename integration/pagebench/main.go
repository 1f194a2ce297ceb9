// Command pagebench measures the portal's message list on a large MariaDB
// table: it bulk-loads messages (default 1,000,000, multi-row inserts) into
// a fresh database (created and dropped), then times broker.Portal's
// ListMessages — the code behind GET /portal/messages — for the first page
// and for a page 10,000 rows deep, as an admin and as a tenant, without a
// filter and with each filter, and prints p50/p99 per case and the EXPLAIN
// of each query shape. The product target is p99 ≤ 20 ms.
//
// -mode stats times the admin statistics (p99 ≤ 50 ms at 1,000,000
// messages) and -mode audit the audit list, on MariaDB or, with -driver
// sqlite, on a SQLite file; see stats.go.
//
//	go run ./integration/pagebench -dsn 'root@tcp(127.0.0.1:3306)/' -messages 1000000
//	go run ./integration/pagebench -mode stats -driver sqlite -messages 1000000
//	go run ./integration/pagebench -mode audit -driver mysql -messages 1000000
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/google/uuid"

	"github.com/msgbroker/caddy-msgbroker/integration/internal/bench"
	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/internal/tokens"
	"github.com/msgbroker/caddy-msgbroker/storage"
)

const clients = 20

var statuses = []string{storage.MessageQueued, storage.MessageProcessing, storage.MessageRetrying, storage.MessageDelivered, storage.MessageFailed}

func main() {
	dsn := flag.String("dsn", "root@tcp(127.0.0.1:3306)/", "MariaDB server DSN (a database is created and dropped)")
	n := flag.Int("messages", 1_000_000, "messages to load")
	runs := flag.Int("runs", 200, "timed requests per case")
	keep := flag.Bool("keep", false, "keep the database (printed) for EXPLAIN by hand")
	reuse := flag.String("database", "", "measure a database kept by -keep instead of loading a new one")
	mode := flag.String("mode", "list", "list (portal message list, MariaDB), stats (admin statistics) or audit (audit list)")
	driver := flag.String("driver", storage.DriverMySQL, "stats and audit modes: mysql or sqlite")
	flag.Parse()
	switch *mode {
	case "stats":
		if err := runStats(context.Background(), *driver, *dsn, *n, *runs); err != nil {
			log.Fatal(err)
		}
		return
	case "audit":
		if err := runAudit(context.Background(), *driver, *dsn, *n, *runs); err != nil {
			log.Fatal(err)
		}
		return
	case "list":
	default:
		log.Fatalf("unknown -mode %q", *mode)
	}
	if err := run(*dsn, *n, *runs, *keep, *reuse); err != nil {
		log.Fatal(err)
	}
}

func run(serverDSN string, n, runs int, keep bool, reuse string) error {
	ctx := context.Background()
	admin, err := sql.Open("mysql", serverDSN)
	if err != nil {
		return err
	}
	defer admin.Close()
	name := reuse
	if reuse == "" {
		name = "msgbroker_pagebench_" + bench.RandomHex(4)
		if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
			return err
		}
	}
	if !keep && reuse == "" {
		defer admin.Exec("DROP DATABASE " + name) //nolint:errcheck
	} else {
		fmt.Println("database", name)
	}
	cfg, err := mysql.ParseDSN(serverDSN)
	if err != nil {
		return err
	}
	cfg.DBName = name
	db, err := storage.Open(ctx, storage.Config{Driver: storage.DriverMySQL, DSN: cfg.FormatDSN()})
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := storage.Migrate(ctx, db); err != nil {
		return err
	}
	store := storage.New(db)
	if reuse == "" {
		start := time.Now()
		if err := load(ctx, store, n); err != nil {
			return err
		}
		fmt.Printf("loaded %d messages in %s\n", n, time.Since(start).Round(time.Second))
	}

	portal, adminP, tenantP, err := principals(ctx, store)
	if err != nil {
		return err
	}
	sample, err := store.Messages.List(ctx, storage.MessageFilter{Limit: 1})
	if err != nil {
		return err
	}
	since := time.Now().Add(-30 * 24 * time.Hour).UTC().Format(time.RFC3339)
	until := time.Now().Add(-60 * 24 * time.Hour).UTC().Format(time.RFC3339)
	cases := []struct {
		name string
		q    broker.MessageQuery
	}{
		{"no filter", broker.MessageQuery{}},
		{"status=failed", broker.MessageQuery{Status: storage.MessageFailed}},
		{"client_id=client-07", broker.MessageQuery{ClientID: "client-07"}},
		{"since 30 days", broker.MessageQuery{Since: since}},
		{"until 60 days ago", broker.MessageQuery{Until: until}},
		{"since+until", broker.MessageQuery{Since: time.Now().Add(-90 * 24 * time.Hour).UTC().Format(time.RFC3339), Until: until}},
		{"status+until", broker.MessageQuery{Status: storage.MessageFailed, Until: until}},
		{"q=<4 chars>", broker.MessageQuery{Q: sample[0].MessageID[:4]}},
	}
	fmt.Printf("%-8s %-22s %-6s %10s %10s\n", "caller", "filter", "page", "p50", "p99")
	for _, who := range []struct {
		name string
		p    *broker.Principal
	}{{"admin", adminP}, {"tenant", tenantP}} {
		for _, c := range cases {
			if who.p == tenantP && c.q.ClientID != "" {
				continue
			}
			first, err := measure(ctx, portal, who.p, c.q, runs)
			if err != nil {
				return fmt.Errorf("%s %s: %w", who.name, c.name, err)
			}
			fmt.Printf("%-8s %-22s %-6s %10s %10s\n", who.name, c.name, "first", first[0], first[1])
			deep, err := deepCursor(ctx, portal, who.p, c.q)
			if err != nil {
				return err
			}
			if deep == "" {
				fmt.Printf("%-8s %-22s %-6s %10s\n", who.name, c.name, "10000", "(fewer rows)")
				continue
			}
			q := c.q
			q.Cursor = deep
			d, err := measure(ctx, portal, who.p, q, runs)
			if err != nil {
				return err
			}
			fmt.Printf("%-8s %-22s %-6s %10s %10s\n", who.name, c.name, "10000", d[0], d[1])
		}
	}
	return explain(ctx, admin, name)
}

// load inserts n messages, 2,000 per statement, spread over 20 clients,
// every status and the last 100 days.
func load(ctx context.Context, store *storage.Store, n int) error {
	const batch = 2000
	base := time.Now().Add(-100 * 24 * time.Hour)
	step := 100 * 24 * time.Hour / time.Duration(n)
	hash := strings.Repeat("0", 64)
	body := make([]byte, 64)
	for i := 0; i < n; i += batch {
		msgs := make([]*storage.Message, 0, batch)
		for j := i; j < min(i+batch, n); j++ {
			at := base.Add(time.Duration(j) * step)
			msgs = append(msgs, &storage.Message{
				MessageID: uuid.NewString(), ClientID: fmt.Sprintf("client-%02d", rand.IntN(clients)),
				SenderNumberHash: hash, SenderNumberMasked: "+4915****0000", BodyEncrypted: body,
				EncryptionKeyID: "k1", PayloadHash: hash, Status: statuses[rand.IntN(len(statuses))],
				QueuedAt: at, CreatedAt: at, UpdatedAt: at,
			})
		}
		if err := store.Messages.InsertMany(ctx, msgs); err != nil {
			return err
		}
	}
	return nil
}

func principals(ctx context.Context, store *storage.Store) (*broker.Portal, *broker.Principal, *broker.Principal, error) {
	tm, err := tokens.New(tokens.Config{Signing: tokens.HMACKey([]byte(strings.Repeat("k", 32)))})
	if err != nil {
		return nil, nil, nil, err
	}
	client := "client-03"
	adminU := &storage.User{Email: "admin@bench", PasswordHash: "x", Role: storage.RoleAdmin, IsActive: true}
	tenantU := &storage.User{Email: "tenant@bench", PasswordHash: "x", Role: storage.RoleUser, ClientID: &client, IsActive: true}
	for _, u := range []*storage.User{adminU, tenantU} {
		if err := store.Users.Create(ctx, u); errors.Is(err, storage.ErrConflict) {
			stored, err := store.Users.GetByEmail(ctx, u.Email)
			if err != nil {
				return nil, nil, nil, err
			}
			*u = *stored
		} else if err != nil {
			return nil, nil, nil, err
		}
	}
	p := &broker.Portal{Store: store, Tokens: tm, CursorKey: []byte(strings.Repeat("c", 32))}
	return p, &broker.Principal{User: adminU}, &broker.Principal{User: tenantU}, nil
}

// measure times runs requests of q and returns p50 and p99.
func measure(ctx context.Context, p *broker.Portal, who *broker.Principal, q broker.MessageQuery, runs int) ([2]time.Duration, error) {
	lat := make([]time.Duration, 0, runs)
	for range runs {
		t0 := time.Now()
		if _, err := p.ListMessages(ctx, who, q); err != nil {
			return [2]time.Duration{}, err
		}
		lat = append(lat, time.Since(t0))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return [2]time.Duration{lat[len(lat)/2].Round(10 * time.Microsecond), lat[len(lat)*99/100].Round(10 * time.Microsecond)}, nil
}

// deepCursor pages 10,000 rows into q's list (50 pages of 200) and returns
// the cursor there, or "" when the list is shorter.
func deepCursor(ctx context.Context, p *broker.Portal, who *broker.Principal, q broker.MessageQuery) (string, error) {
	q.Limit = "200"
	for range 50 {
		page, err := p.ListMessages(ctx, who, q)
		if err != nil {
			return "", err
		}
		if page.NextCursor == "" {
			return "", nil
		}
		q.Cursor = page.NextCursor
	}
	// The cursor is bound to the filters, page size included: re-derive
	// it at the default page size by listing one more page there.
	return reseal(ctx, p, who, q)
}

// reseal turns a 200-row cursor into one valid at the default page size:
// it reads the boundary row and pages at 50 to it.
func reseal(ctx context.Context, p *broker.Portal, who *broker.Principal, q broker.MessageQuery) (string, error) {
	page, err := p.ListMessages(ctx, who, broker.MessageQuery{Status: q.Status, ClientID: q.ClientID, Since: q.Since, Until: q.Until, Q: q.Q, Limit: "200", Cursor: q.Cursor})
	if err != nil || len(page.Items) == 0 {
		return "", err
	}
	target := page.Items[0].MessageID
	q.Limit, q.Cursor = "", ""
	for {
		pg, err := p.ListMessages(ctx, who, q)
		if err != nil || pg.NextCursor == "" {
			return "", err
		}
		q.Cursor = pg.NextCursor
		for _, it := range pg.Items {
			if it.MessageID == target {
				return q.Cursor, nil
			}
		}
	}
}

func explain(ctx context.Context, admin *sql.DB, name string) error {
	// The shapes storage.MessageRepo.List sends (it forces the index whose
	// order is the list's, except with a message id prefix).
	const after = "(created_at < NOW() - INTERVAL 70 DAY OR (created_at = NOW() - INTERVAL 70 DAY AND id < 300000))"
	queries := []string{
		"SELECT * FROM messages FORCE INDEX (idx_messages_created_at_id) ORDER BY created_at DESC, id DESC LIMIT 51",
		"SELECT * FROM messages FORCE INDEX (idx_messages_created_at_id) WHERE created_at < NOW() - INTERVAL 60 DAY ORDER BY created_at DESC, id DESC LIMIT 51",
		"SELECT * FROM messages FORCE INDEX (idx_messages_created_at_id) WHERE created_at < NOW() - INTERVAL 60 DAY AND " + after + " ORDER BY created_at DESC, id DESC LIMIT 51",
		"SELECT * FROM messages FORCE INDEX (idx_messages_client_id_created_at_id) WHERE client_id = 'client-03' AND " + after + " ORDER BY created_at DESC, id DESC LIMIT 51",
		"SELECT * FROM messages FORCE INDEX (idx_messages_client_id_created_at_id) WHERE client_id = 'client-03' AND status = 'failed' ORDER BY created_at DESC, id DESC LIMIT 51",
		"SELECT * FROM messages FORCE INDEX (idx_messages_status_created_at_id) WHERE status = 'failed' AND created_at < NOW() - INTERVAL 60 DAY ORDER BY created_at DESC, id DESC LIMIT 51",
		"SELECT * FROM messages FORCE INDEX (idx_messages_created_at_id) WHERE created_at >= NOW() - INTERVAL 30 DAY ORDER BY created_at DESC, id DESC LIMIT 51",
		"SELECT * FROM messages WHERE message_id LIKE 'ab%' ORDER BY created_at DESC, id DESC LIMIT 51",
	}
	fmt.Println("\nEXPLAIN (table, type, key, rows, extra):")
	for _, q := range queries {
		rows, err := admin.QueryContext(ctx, "EXPLAIN "+strings.Replace(q, "FROM messages", "FROM "+name+".messages", 1))
		if err != nil {
			return err
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]sql.NullString, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				rows.Close()
				return err
			}
			get := func(c string) string {
				for i, name := range cols {
					if name == c {
						return vals[i].String
					}
				}
				return ""
			}
			fmt.Printf("  %s\n    → type=%s key=%s rows=%s extra=%s\n", q, get("type"), get("key"), get("rows"), get("Extra"))
		}
		rows.Close()
	}
	return nil
}
