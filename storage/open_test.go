package storage_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/uptrace/bun"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

func TestOpenSQLiteCreatesPrivateFilesAndSetsPragmas(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		dsn     string
		path    string
		pragmas map[string]string
	}{
		{
			name:    "plain path in a missing directory",
			dsn:     filepath.Join(dir, "a", "b", "msgbroker.db"),
			path:    filepath.Join(dir, "a", "b", "msgbroker.db"),
			pragmas: map[string]string{"journal_mode": "wal", "foreign_keys": "1", "busy_timeout": "5000", "synchronous": "1"},
		},
		{
			name:    "file uri keeping a caller's pragma",
			dsn:     "file:" + filepath.Join(dir, "uri", "msgbroker.db") + "?_pragma=busy_timeout(1234)&cache=private",
			path:    filepath.Join(dir, "uri", "msgbroker.db"),
			pragmas: map[string]string{"journal_mode": "wal", "foreign_keys": "1", "busy_timeout": "1234"},
		},
		{
			name:    "file uri with an empty authority",
			dsn:     "file://" + filepath.Join(dir, "authority", "msgbroker.db"),
			path:    filepath.Join(dir, "authority", "msgbroker.db"),
			pragmas: map[string]string{"foreign_keys": "1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openDB(t, storage.Config{Driver: storage.DriverSQLite, DSN: tt.dsn})
			for pragma, want := range tt.pragmas {
				var got string
				mustNoErr(t, db.QueryRowContext(testContext(t), "PRAGMA "+pragma).Scan(&got), pragma)
				if !strings.EqualFold(got, want) {
					t.Errorf("PRAGMA %s = %s, want %s", pragma, got, want)
				}
			}
			assertMode(t, filepath.Dir(tt.path), 0o700)
			assertMode(t, tt.path, 0o600)
			if storage.Dialect(db) != storage.DriverSQLite {
				t.Errorf("Dialect = %q", storage.Dialect(db))
			}
		})
	}
}

func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	mustNoErr(t, err, "stat")
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("mode of %s = %o, want %o", path, got, want)
	}
}

func TestOpenSQLiteInMemoryKeepsOneDatabase(t *testing.T) {
	for _, dsn := range []string{":memory:", "file::memory:", "file:memdb?mode=memory"} {
		t.Run(dsn, func(t *testing.T) {
			ctx := testContext(t)
			db := openDB(t, storage.Config{Driver: storage.DriverSQLite, DSN: dsn, MaxOpenConns: 10})
			_, err := storage.Migrate(ctx, db)
			mustNoErr(t, err, "Migrate")
			repo := storage.New(db).Devices
			mustNoErr(t, repo.Add(ctx, &storage.Device{UserID: "1", DeviceID: "a"}), "Add")
			// Several queries at once would each get a connection, and so an
			// empty database, if the pool were not held to one.
			errs := make(chan error, 5)
			for range 5 {
				go func() {
					_, err := repo.Get(ctx, "1", "a")
					errs <- err
				}()
			}
			for range 5 {
				mustNoErr(t, <-errs, "Get")
			}
			if n := db.Stats().MaxOpenConnections; n != 1 {
				t.Errorf("MaxOpenConnections = %d, want 1", n)
			}
		})
	}
}

func TestOpenMySQLPinsUTCAndUTF8MB4(t *testing.T) {
	db := openDB(t, storage.Config{Driver: storage.DriverMySQL, DSN: storagetest.MySQL(t)})
	ctx := testContext(t)
	var zone, charset, collation string
	err := db.QueryRowContext(ctx, "SELECT @@session.time_zone, @@character_set_connection, @@collation_connection").Scan(&zone, &charset, &collation)
	mustNoErr(t, err, "reading session variables")
	if zone != "+00:00" || charset != "utf8mb4" || collation != "utf8mb4_unicode_ci" {
		t.Errorf("session time zone %s, charset %s, collation %s; want +00:00, utf8mb4, utf8mb4_unicode_ci", zone, charset, collation)
	}
	if storage.Dialect(db) != storage.DriverMySQL {
		t.Errorf("Dialect = %q", storage.Dialect(db))
	}
	if n := db.Stats().MaxOpenConnections; n != storage.DefaultMySQLMaxOpenConns {
		t.Errorf("MaxOpenConnections = %d, want %d", n, storage.DefaultMySQLMaxOpenConns)
	}
}

func TestHandWrittenRowsGetUTCDefaults(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		_, err := db.ExecContext(ctx, "INSERT INTO audit_log (actor, action, outcome) VALUES ('cli', 'manual', 'success')")
		mustNoErr(t, err, "raw insert")
		entries, err := storage.New(db).Audit.List(ctx, storage.AuditFilter{})
		mustNoErr(t, err, "List")
		if len(entries) != 1 || time.Since(entries[0].CreatedAt).Abs() > time.Minute || entries[0].CreatedAt.Location() != time.UTC {
			t.Errorf("hand-written row = %+v, want created_at near now in UTC", entries)
		}
	})
}

func TestOpenErrorsNeverShowThePassword(t *testing.T) {
	const secret = "s3cr3t-Pa55"
	server, err := mysql.ParseDSN(storagetest.MySQL(t))
	mustNoErr(t, err, "parsing test dsn")

	wrongPassword := server.Clone()
	wrongPassword.User, wrongPassword.Passwd = "msgbroker_nobody", secret
	unreachable := wrongPassword.Clone()
	unreachable.Addr = "127.0.0.1:1"

	for name, dsn := range map[string]string{
		"wrong password": wrongPassword.FormatDSN(),
		"unreachable":    unreachable.FormatDSN(),
	} {
		t.Run(name, func(t *testing.T) {
			db, err := storage.Open(testContext(t), storage.Config{Driver: storage.DriverMySQL, DSN: dsn})
			if err == nil {
				_ = db.Close()
				t.Fatal("Open succeeded")
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error reveals the password: %v", err)
			}
			if !strings.Contains(err.Error(), "***") {
				t.Errorf("error does not name the (redacted) dsn: %v", err)
			}
		})
	}
}

func TestOpenRejectsBadConfig(t *testing.T) {
	tests := []struct {
		cfg  storage.Config
		want string // what the error must say about the offending setting
	}{
		{storage.Config{Driver: "postgres", DSN: "x"}, `unsupported database driver "postgres"`},
		{storage.Config{Driver: storage.DriverSQLite, DSN: ""}, "sqlite dsn is empty"},
		{storage.Config{Driver: storage.DriverSQLite, DSN: "file://example.com/x.db"}, `unsupported authority "example.com" in sqlite uri`},
		{storage.Config{Driver: storage.DriverMySQL, DSN: "not a dsn"}, "parsing mysql dsn"},
	}
	for _, tt := range tests {
		db, err := storage.Open(testContext(t), tt.cfg)
		if err == nil {
			_ = db.Close()
			t.Errorf("Open(%+v) succeeded, want an error saying %q", tt.cfg, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Open(%+v) = %q, want an error saying %q", tt.cfg, err, tt.want)
		}
	}
}

func TestRedactDSN(t *testing.T) {
	tests := []struct {
		driver, dsn, want string
	}{
		{storage.DriverMySQL, "app:hunter2@tcp(db:3306)/msgbroker?timeout=5s", "app:***@tcp(db:3306)/msgbroker?timeout=5s"},
		{storage.DriverMySQL, "app@tcp(db:3306)/msgbroker", "app@tcp(db:3306)/msgbroker"},
		{storage.DriverMySQL, "hunter2", "(invalid mysql dsn)"},
		{storage.DriverSQLite, "data/msgbroker.db", "data/msgbroker.db"},
		{"other", "user:hunter2@host", "(redacted)"},
	}
	for _, tt := range tests {
		if got := storage.RedactDSN(tt.driver, tt.dsn); got != tt.want {
			t.Errorf("RedactDSN(%s, %q) = %q, want %q", tt.driver, tt.dsn, got, tt.want)
		}
	}
}

func TestErrorsAreWrappedWithContext(t *testing.T) {
	db := storagetest.OpenSQLite(t)
	_, err := storage.New(db).Users.GetByID(testContext(t), 42)
	const want = "getting user 42: not_found: not found"
	if !errors.Is(err, storage.ErrNotFound) || apperr.KindOf(err) != apperr.NotFound || err.Error() != want {
		t.Errorf("GetByID(42) = %q, want %q wrapping ErrNotFound (kind NotFound)", err, want)
	}
}
