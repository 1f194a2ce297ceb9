package storage_test

import (
	"context"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

// eachConfig runs fn as the subtests "sqlite" and "mysql" with the config of
// a fresh, empty (unmigrated) database, for tests that need to open several
// handles or control migration themselves.
func eachConfig(t *testing.T, fn func(t *testing.T, cfg storage.Config)) {
	t.Helper()
	t.Run(storage.DriverSQLite, func(t *testing.T) {
		fn(t, storage.Config{Driver: storage.DriverSQLite, DSN: storagetest.SQLite(t)})
	})
	t.Run(storage.DriverMySQL, func(t *testing.T) {
		fn(t, storage.Config{Driver: storage.DriverMySQL, DSN: storagetest.MySQL(t)})
	})
}

// openDB opens cfg and closes the handle when the test ends.
func openDB(t *testing.T, cfg storage.Config) *bun.DB {
	t.Helper()
	db, err := storage.Open(testContext(t), cfg)
	if err != nil {
		t.Fatalf("Open(%s): %v", cfg.Driver, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// testContext returns a context bounded by a minute and by the test.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// tables returns the names of the tables in db's database.
func tables(t *testing.T, db *bun.DB) map[string]bool {
	t.Helper()
	query := "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
	if storage.Dialect(db) == storage.DriverMySQL {
		query = "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()"
	}
	return names(t, db, query)
}

// indexes returns the names of the secondary indexes in db's database,
// leaving out primary keys and SQLite's automatic indexes.
func indexes(t *testing.T, db *bun.DB) map[string]bool {
	t.Helper()
	query := "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%'"
	if storage.Dialect(db) == storage.DriverMySQL {
		query = "SELECT DISTINCT index_name FROM information_schema.statistics WHERE table_schema = DATABASE() AND index_name <> 'PRIMARY'"
	}
	return names(t, db, query)
}

func names(t *testing.T, db *bun.DB, query string, args ...any) map[string]bool {
	t.Helper()
	var list []string
	if err := db.NewRaw(query, args...).Scan(testContext(t), &list); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	set := make(map[string]bool, len(list))
	for _, n := range list {
		set[n] = true
	}
	return set
}

// columns returns the column names of a table.
func columns(t *testing.T, db *bun.DB, table string) map[string]bool {
	t.Helper()
	if storage.Dialect(db) == storage.DriverMySQL {
		return names(t, db, "SELECT column_name FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ?", table)
	}
	return names(t, db, "SELECT name FROM pragma_table_info(?)", table)
}

// mustNoErr fails the test at once if err is not nil.
func mustNoErr(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// ptr returns a pointer to v.
func ptr[T any](v T) *T {
	return &v
}

// baseTime is a fixed, microsecond-precise UTC instant the tests build
// timestamps from.
var baseTime = time.Date(2025, 1, 15, 10, 30, 0, 123456000, time.UTC)
