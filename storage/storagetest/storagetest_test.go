package storagetest_test

import (
	"context"
	"database/sql"
	"slices"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"

	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

// TestMySQLDatabaseIsFreshAndDroppedAfterTheTest checks that MySQL gives
// each call a database of its own with no tables in it, and that the
// database is gone once the test that asked for it has ended.
func TestMySQLDatabaseIsFreshAndDroppedAfterTheTest(t *testing.T) {
	var names []string
	t.Run("inner", func(t *testing.T) {
		for range 2 {
			dsn := storagetest.MySQL(t)
			cfg, err := mysql.ParseDSN(dsn)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(cfg.DBName, "msgbroker_test_") {
				t.Errorf("database name %q lacks the msgbroker_test_ prefix", cfg.DBName)
			}
			if slices.Contains(names, cfg.DBName) {
				t.Errorf("database %s handed out twice", cfg.DBName)
			}
			names = append(names, cfg.DBName)
			if tables := tablesIn(t, dsn); len(tables) != 0 {
				t.Errorf("fresh database %s already holds tables %v", cfg.DBName, tables)
			}
			// Leave a table behind: dropping must not depend on the
			// database being empty.
			execDSN(t, dsn, "CREATE TABLE leftover (id INT PRIMARY KEY)")
		}
	})
	if len(names) == 0 { // the inner test was skipped
		return
	}
	db := storagetest.OpenMySQL(t)
	for _, name := range names {
		var n int
		err := db.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?", name).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("database %s still exists after its test ended", name)
		}
	}
}

// tablesIn lists the tables of the database dsn points at.
func tablesIn(t *testing.T, dsn string) []string {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(t.Context(), "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return tables
}

func execDSN(t *testing.T, dsn, stmt string) {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(t.Context(), stmt); err != nil {
		t.Fatal(err)
	}
}

func TestRedisAnswers(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: storagetest.Redis(t)})
	defer client.Close()
	if err := client.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("PING: %v", err)
	}
}

func TestEachDialectGivesMigratedDatabases(t *testing.T) {
	var seen []string
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		seen = append(seen, storage.Dialect(db))
		states, err := storage.MigrationStatus(t.Context(), db)
		if err != nil {
			t.Fatal(err)
		}
		if len(states) == 0 {
			t.Fatal("no migrations listed: the database would pass with no schema")
		}
		for _, st := range states {
			if !st.Applied {
				t.Errorf("migration %s not applied", st.Name)
			}
		}
	})
	if len(seen) == 0 || seen[0] != storage.DriverSQLite {
		t.Errorf("dialects run: %v", seen)
	}
}
