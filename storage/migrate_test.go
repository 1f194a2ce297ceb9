package storage_test

import (
	"context"
	"errors"
	"maps"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"

	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

var (
	allMigrations = []string{"0001_base_schema", "0002_query_indexes", "0003_health_probe", "0004_portal_hardening", "0005_stats_rollup_audit_indexes", "0006_stats_shards", "0007_certmagic_long_keys"}
	schemaTables  = []string{
		"messages", "users", "clients", "audit_log", "refresh_tokens",
		"devices", "certmagic_data", "certmagic_locks",
	}
	// queryIndexes are created by 0002_query_indexes and kept.
	queryIndexes = []string{
		"idx_messages_encryption_key_id", "idx_messages_sender_number_hash",
		"idx_clients_client_id", "idx_clients_status", "idx_clients_not_after",
		"idx_clients_updated_at", "idx_refresh_tokens_expires_at",
	}
	// oldAuditIndexes are created by 0002_query_indexes and replaced by
	// 0005_stats_rollup_audit_indexes.
	oldAuditIndexes = []string{"idx_audit_log_created_at", "idx_audit_log_actor_id", "idx_audit_log_action_id"}
	// rollupTables and auditIndexes are created by 0005.
	rollupTables = []string{"message_counts", "message_hours", "message_latency"}
	auditIndexes = []string{
		"idx_audit_o", "idx_audit_a_o", "idx_audit_c_o", "idx_audit_t_o",
		"idx_audit_ac_o", "idx_audit_at_o", "idx_audit_ct_o", "idx_audit_act_o",
	}
	// idIndexes are created by 0002_query_indexes and replaced by
	// timeIndexes in 0004_portal_hardening.
	idIndexes   = []string{"idx_messages_client_id_id", "idx_messages_status_id", "idx_messages_created_at"}
	timeIndexes = []string{
		"idx_messages_client_id_created_at_id", "idx_messages_status_created_at_id", "idx_messages_created_at_id",
		"uq_refresh_tokens_token_hash",
	}
)

func TestMigrationsUpDownUpCreateAndDropTheSchema(t *testing.T) {
	eachConfig(t, func(t *testing.T, cfg storage.Config) {
		ctx := testContext(t)
		db := openDB(t, cfg)

		applied, err := storage.Migrate(ctx, db)
		mustNoErr(t, err, "Migrate")
		if !slices.Equal(applied, allMigrations) {
			t.Fatalf("Migrate applied %v, want %v", applied, allMigrations)
		}
		assertSchema(t, db, allMigrations)

		again, err := storage.Migrate(ctx, db)
		mustNoErr(t, err, "second Migrate")
		if len(again) != 0 {
			t.Fatalf("second Migrate applied %v, want nothing", again)
		}

		steps := []struct {
			steps      int
			rolledBack []string
			remaining  []string
		}{
			{1, []string{"0007_certmagic_long_keys"}, []string{"0001_base_schema", "0002_query_indexes", "0003_health_probe", "0004_portal_hardening", "0005_stats_rollup_audit_indexes", "0006_stats_shards"}},
			{1, []string{"0006_stats_shards"}, []string{"0001_base_schema", "0002_query_indexes", "0003_health_probe", "0004_portal_hardening", "0005_stats_rollup_audit_indexes"}},
			{1, []string{"0005_stats_rollup_audit_indexes"}, []string{"0001_base_schema", "0002_query_indexes", "0003_health_probe", "0004_portal_hardening"}},
			{1, []string{"0004_portal_hardening"}, []string{"0001_base_schema", "0002_query_indexes", "0003_health_probe"}},
			{1, []string{"0003_health_probe"}, []string{"0001_base_schema", "0002_query_indexes"}},
			{1, []string{"0002_query_indexes"}, []string{"0001_base_schema"}},
			{5, []string{"0001_base_schema"}, nil},
			{1, nil, nil},
		}
		for _, step := range steps {
			rolledBack, err := storage.MigrateDown(ctx, db, step.steps)
			mustNoErr(t, err, "MigrateDown")
			if !slices.Equal(rolledBack, step.rolledBack) {
				t.Fatalf("MigrateDown(%d) rolled back %v, want %v", step.steps, rolledBack, step.rolledBack)
			}
			assertSchema(t, db, step.remaining)
		}

		applied, err = storage.Migrate(ctx, db)
		mustNoErr(t, err, "Migrate after rolling back")
		if !slices.Equal(applied, allMigrations) {
			t.Fatalf("Migrate after rolling back applied %v, want %v", applied, allMigrations)
		}
		assertSchema(t, db, allMigrations)

		rolledBack, err := storage.MigrateDown(ctx, db, len(allMigrations))
		mustNoErr(t, err, "MigrateDown all")
		if want := []string{"0007_certmagic_long_keys", "0006_stats_shards", "0005_stats_rollup_audit_indexes", "0004_portal_hardening", "0003_health_probe", "0002_query_indexes", "0001_base_schema"}; !slices.Equal(rolledBack, want) {
			t.Fatalf("MigrateDown(all) rolled back %v, want %v", rolledBack, want)
		}
		assertSchema(t, db, nil)
	})
}

// assertSchema checks tables, indexes and MigrationStatus against the set
// of applied migrations.
func assertSchema(t *testing.T, db *bun.DB, applied []string) {
	t.Helper()
	ctx := testContext(t)
	base := slices.Contains(applied, "0001_base_schema")
	idx := slices.Contains(applied, "0002_query_indexes")
	probe := slices.Contains(applied, "0003_health_probe")
	hardened := slices.Contains(applied, "0004_portal_hardening")
	rollup := slices.Contains(applied, "0005_stats_rollup_audit_indexes")
	sharded := slices.Contains(applied, "0006_stats_shards")

	have := tables(t, db)
	if have["health_probe"] != probe {
		t.Errorf("table health_probe present = %v, want %v (applied %v)", have["health_probe"], probe, applied)
	}
	for _, table := range schemaTables {
		if have[table] != base {
			t.Errorf("table %s present = %v, want %v (applied %v)", table, have[table], base, applied)
		}
	}
	for _, table := range rollupTables {
		if have[table] != rollup {
			t.Errorf("table %s present = %v, want %v (applied %v)", table, have[table], rollup, applied)
		}
		if rollup && columns(t, db, table)["shard"] != sharded {
			t.Errorf("column %s.shard present = %v, want %v (applied %v)", table, !sharded, sharded, applied)
		}
		if have[table+"_sharded"] || have[table+"_folded"] {
			t.Errorf("a working copy of %s was left behind (applied %v)", table, applied)
		}
	}
	haveIdx := indexes(t, db)
	for _, set := range []struct {
		names []string
		want  bool
	}{{queryIndexes, idx}, {oldAuditIndexes, idx && !rollup}, {auditIndexes, rollup}} {
		for _, index := range set.names {
			if haveIdx[index] != set.want {
				t.Errorf("index %s present = %v, want %v (applied %v)", index, haveIdx[index], set.want, applied)
			}
		}
	}
	for _, index := range idIndexes {
		if haveIdx[index] != (idx && !hardened) {
			t.Errorf("index %s present = %v, want %v (applied %v)", index, haveIdx[index], idx && !hardened, applied)
		}
	}
	for _, index := range timeIndexes {
		if haveIdx[index] != hardened {
			t.Errorf("index %s present = %v, want %v (applied %v)", index, haveIdx[index], hardened, applied)
		}
	}
	if base && columns(t, db, "refresh_tokens")["token_hash"] != hardened {
		t.Errorf("column refresh_tokens.token_hash present = %v, want %v (applied %v)", !hardened, hardened, applied)
	}

	states, err := storage.MigrationStatus(ctx, db)
	mustNoErr(t, err, "MigrationStatus")
	if len(states) != len(allMigrations) {
		t.Fatalf("MigrationStatus returned %d migrations, want %d: %+v", len(states), len(allMigrations), states)
	}
	for i, st := range states {
		want := slices.Contains(applied, allMigrations[i])
		if st.Name != allMigrations[i] || st.Applied != want || st.AppliedAt.IsZero() == want || st.Unknown {
			t.Errorf("MigrationStatus[%d] = %+v, want name %s applied %v", i, st, allMigrations[i], want)
		}
		if want && time.Since(st.AppliedAt).Abs() > time.Hour {
			t.Errorf("MigrationStatus[%d].AppliedAt = %v, not near now (time zone mix-up?)", i, st.AppliedAt)
		}
	}
}

func TestMigrateDownRejectsFewerThanOneStep(t *testing.T) {
	db := openDB(t, storage.Config{Driver: storage.DriverSQLite, DSN: ":memory:"})
	for _, steps := range []int{0, -1} {
		if _, err := storage.MigrateDown(testContext(t), db, steps); err == nil {
			t.Errorf("MigrateDown(%d) succeeded, want an error", steps)
		}
	}
}

func TestConcurrentMigrateAppliesEachMigrationOnce(t *testing.T) {
	eachConfig(t, func(t *testing.T, cfg storage.Config) {
		const nodes = 4
		ctx := testContext(t)
		dbs := make([]*bun.DB, nodes)
		for i := range dbs {
			dbs[i] = openDB(t, cfg)
		}

		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			applied []string
		)
		for _, db := range dbs {
			wg.Go(func() {
				names, err := storage.Migrate(ctx, db)
				if err != nil {
					t.Errorf("Migrate: %v", err)
				}
				mu.Lock()
				applied = append(applied, names...)
				mu.Unlock()
			})
		}
		wg.Wait()

		slices.Sort(applied)
		if !slices.Equal(applied, allMigrations) {
			t.Fatalf("nodes applied %v together, want each of %v once", applied, allMigrations)
		}
		assertSchema(t, dbs[0], allMigrations)
	})
}

func TestMigrateWaitsForAHeldLockAndGivesUpWithErrMigrationLocked(t *testing.T) {
	eachConfig(t, func(t *testing.T, cfg storage.Config) {
		ctx := testContext(t)
		db := openDB(t, cfg)
		other := migrate.NewMigrator(openDB(t, cfg), migrate.NewMigrations())
		mustNoErr(t, other.Init(ctx), "Init")
		mustNoErr(t, other.Lock(ctx), "Lock")

		for name, run := range map[string]func(context.Context) error{
			"Migrate":     func(ctx context.Context) error { _, err := storage.Migrate(ctx, db); return err },
			"MigrateDown": func(ctx context.Context) error { _, err := storage.MigrateDown(ctx, db, 1); return err },
		} {
			short, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
			err := run(short)
			cancel()
			if !errors.Is(err, storage.ErrMigrationLocked) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("%s under a held lock = %v, want ErrMigrationLocked and DeadlineExceeded", name, err)
			}
		}

		// Released while a migration waits: it proceeds.
		go func() {
			time.Sleep(300 * time.Millisecond)
			if err := other.Unlock(context.Background()); err != nil {
				t.Errorf("Unlock: %v", err)
			}
		}()
		applied, err := storage.Migrate(ctx, db)
		mustNoErr(t, err, "Migrate after unlock")
		if !slices.Equal(applied, allMigrations) {
			t.Fatalf("Migrate applied %v, want %v", applied, allMigrations)
		}
		// And it released the lock itself.
		mustNoErr(t, other.Lock(ctx), "Lock after Migrate")
		mustNoErr(t, other.Unlock(ctx), "Unlock")
	})
}

func TestMigrateDownRefusesWhenTheDatabaseHasUnknownMigrations(t *testing.T) {
	eachConfig(t, func(t *testing.T, cfg storage.Config) {
		ctx := testContext(t)
		db := openDB(t, cfg)
		_, err := storage.Migrate(ctx, db)
		mustNoErr(t, err, "Migrate")
		_, err = db.NewInsert().Model(&migrate.Migration{Name: "9999", GroupID: 99, MigratedAt: time.Now()}).
			ModelTableExpr("bun_migrations").Exec(ctx)
		mustNoErr(t, err, "recording a newer migration")

		states, err := storage.MigrationStatus(ctx, db)
		mustNoErr(t, err, "MigrationStatus")
		last := states[len(states)-1]
		if len(states) != len(allMigrations)+1 || last.Name != "9999" || !last.Applied || !last.Unknown {
			t.Fatalf("MigrationStatus = %+v, want the known migrations then 9999 applied and unknown", states)
		}

		if rolledBack, err := storage.MigrateDown(ctx, db, 1); err == nil {
			t.Fatalf("MigrateDown rolled back %v, want a refusal", rolledBack)
		}
		assertTablesPresent(t, db)
	})
}

func assertTablesPresent(t *testing.T, db *bun.DB) {
	t.Helper()
	have := tables(t, db)
	for _, table := range schemaTables {
		if !have[table] {
			t.Errorf("table %s missing", table)
		}
	}
}

// The queries the original PHP admin tools ran keep working on the schema.
func TestOriginalAdminQueriesRunUnchanged(t *testing.T) {
	eachConfig(t, func(t *testing.T, cfg storage.Config) {
		ctx := testContext(t)
		db := openDB(t, cfg)
		_, err := storage.Migrate(ctx, db)
		mustNoErr(t, err, "Migrate")
		st := storage.New(db)

		for i, m := range []struct{ client, status string }{
			{"proxy-a", storage.MessageDelivered},
			{"proxy-a", storage.MessageQueued},
			{"proxy-b", storage.MessageDelivered},
			{"proxy-b", storage.MessageDelivered},
			{"proxy-c", storage.MessageFailed},
		} {
			mustNoErr(t, st.Messages.Insert(ctx, newMessage(i, m.client, m.status)), "inserting message")
		}
		for i := range 12 {
			mustNoErr(t, st.Audit.Insert(ctx, &storage.AuditEntry{
				CreatedAt: baseTime.Add(time.Duration(i) * time.Minute),
				Actor:     "admin@example.com", Action: "user.create", Target: "x", Outcome: storage.AuditSuccess,
			}), "inserting audit entry")
		}

		var delivered int64
		mustNoErr(t, db.QueryRowContext(ctx, "SELECT COUNT(*) FROM messages WHERE status = 'delivered'").Scan(&delivered), "original count query")
		if delivered != 3 {
			t.Errorf("delivered count = %d, want 3", delivered)
		}

		rows, err := db.QueryContext(ctx, "SELECT client_id, COUNT(*) as total FROM messages GROUP BY client_id")
		mustNoErr(t, err, "original group query")
		perClient := map[string]int64{}
		for rows.Next() {
			var client string
			var total int64
			mustNoErr(t, rows.Scan(&client, &total), "scanning group row")
			perClient[client] = total
		}
		mustNoErr(t, rows.Err(), "group rows")
		if want := map[string]int64{"proxy-a": 2, "proxy-b": 2, "proxy-c": 1}; !maps.Equal(perClient, want) {
			t.Errorf("per-client totals = %v, want %v", perClient, want)
		}

		var entries []storage.AuditEntry
		mustNoErr(t, db.NewRaw("SELECT * FROM audit_log ORDER BY created_at DESC LIMIT 10").Scan(ctx, &entries), "original audit query")
		if len(entries) != 10 || !entries[0].CreatedAt.Equal(baseTime.Add(11*time.Minute)) || !entries[9].CreatedAt.Equal(baseTime.Add(2*time.Minute)) {
			t.Errorf("original audit query returned %d entries from %v to %v", len(entries), entries[0].CreatedAt, entries[len(entries)-1].CreatedAt)
		}
	})
}

func TestModelsMatchTheMigratedSchema(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		for _, model := range []any{
			(*storage.Message)(nil), (*storage.User)(nil), (*storage.Client)(nil),
			(*storage.AuditEntry)(nil), (*storage.RefreshToken)(nil), (*storage.Device)(nil),
			(*storage.MessageCount)(nil), (*storage.MessageHour)(nil), (*storage.LatencyCount)(nil),
		} {
			table := db.Table(reflect.TypeOf(model))
			fields := make(map[string]bool, len(table.Fields))
			for _, f := range table.Fields {
				fields[f.Name] = true
			}
			if cols := columns(t, db, table.Name); !maps.Equal(fields, cols) {
				t.Errorf("%T maps columns %v, table %s has %v", model, slices.Sorted(maps.Keys(fields)), table.Name, slices.Sorted(maps.Keys(cols)))
			}
		}
	})
}

func TestPendingMigrationsCountsWhatIsNotApplied(t *testing.T) {
	eachConfig(t, func(t *testing.T, cfg storage.Config) {
		ctx := testContext(t)
		db := openDB(t, cfg)
		for _, step := range []struct {
			do   func() error
			want int
		}{
			{func() error { return nil }, len(allMigrations)},
			{func() error { _, err := storage.Migrate(ctx, db); return err }, 0},
			{func() error { _, err := storage.MigrateDown(ctx, db, 2); return err }, 2},
		} {
			mustNoErr(t, step.do(), "migrating")
			n, err := storage.PendingMigrations(ctx, db)
			mustNoErr(t, err, "PendingMigrations")
			if n != step.want {
				t.Errorf("PendingMigrations = %d, want %d", n, step.want)
			}
		}
	})
}
