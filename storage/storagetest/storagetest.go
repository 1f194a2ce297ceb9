// Package storagetest provides throwaway databases for tests: a fresh
// MariaDB/MySQL database per test, a Redis address, a SQLite file, and a
// helper that runs a test against every supported dialect.
//
// Services that do not answer make the test skip, unless the environment
// variable MSGBROKER_TEST_REQUIRE_SERVICES=1 is set (as in CI), in which
// case the test fails.
package storagetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"

	"github.com/msgbroker/caddy-msgbroker/storage"
)

// Environment variables read by this package.
const (
	// EnvMySQLDSN is a go-sql-driver DSN of a server on which the tests may
	// create and drop databases. The database name in it is ignored.
	EnvMySQLDSN = "MSGBROKER_TEST_MYSQL_DSN"
	// EnvRedisAddr is the host:port of a Redis server.
	EnvRedisAddr = "MSGBROKER_TEST_REDIS_ADDR"
	// EnvRequireServices, when "1", turns skips for unreachable services
	// into failures.
	EnvRequireServices = "MSGBROKER_TEST_REQUIRE_SERVICES"
	// EnvOnlySQLite, when "1", makes EachDialect run the sqlite subtest
	// alone. integration/mutation.sh sets it: a mutant of domain logic
	// fails on either dialect, and creating a MariaDB database for every
	// test of every mutant would make a run take hours. Never set in CI.
	EnvOnlySQLite = "MSGBROKER_TEST_ONLY_SQLITE"
)

// Defaults used when the environment variables are unset.
const (
	DefaultMySQLDSN  = "root@tcp(127.0.0.1:3306)/"
	DefaultRedisAddr = "127.0.0.1:6379"
)

// serviceTimeout bounds how long a test waits for a service to answer.
const serviceTimeout = 5 * time.Second

// MySQL creates a fresh, empty database named msgbroker_test_<random hex>
// on the server given by MSGBROKER_TEST_MYSQL_DSN, drops it when the test
// ends, and returns a DSN pointing at it. Close connections to it in an
// earlier registered cleanup or before the test returns.
func MySQL(t testing.TB) string {
	t.Helper()
	cfg, err := mysql.ParseDSN(envOr(EnvMySQLDSN, DefaultMySQLDSN))
	if err != nil {
		t.Fatalf("storagetest: parsing %s: %v", EnvMySQLDSN, err)
	}
	cfg.DBName = ""
	cfg.Timeout = serviceTimeout
	server := storage.RedactDSN(storage.DriverMySQL, cfg.FormatDSN())

	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatalf("storagetest: configuring mysql connector for %s: %v", server, err)
	}
	admin := sql.OpenDB(connector)
	ctx, cancel := context.WithTimeout(context.Background(), serviceTimeout)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		_ = admin.Close()
		unavailable(t, "MariaDB", server, err)
	}

	name := "msgbroker_test_" + randomHex(8)
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		_ = admin.Close()
		t.Fatalf("storagetest: creating database %s on %s: %v", name, server, err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
			t.Errorf("storagetest: dropping database %s: %v", name, err)
		}
	})

	cfg.DBName = name
	return cfg.FormatDSN()
}

// Redis returns the address of the Redis server given by
// MSGBROKER_TEST_REDIS_ADDR after checking that it answers. The server is
// shared: tests should use their own key prefix or database number.
func Redis(t testing.TB) string {
	t.Helper()
	addr := envOr(EnvRedisAddr, DefaultRedisAddr)
	client := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: serviceTimeout, MaxRetries: -1})
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), serviceTimeout)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		unavailable(t, "Redis", addr, err)
	}
	return addr
}

// SQLite returns the path of a not yet existing database file in a
// directory removed when the test ends.
func SQLite(t testing.TB) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "msgbroker.db")
}

// OpenSQLite opens a fresh, migrated SQLite database that is closed when
// the test ends.
func OpenSQLite(t testing.TB) *bun.DB {
	t.Helper()
	return open(t, storage.Config{Driver: storage.DriverSQLite, DSN: SQLite(t)})
}

// OpenMySQL opens a fresh, migrated MariaDB/MySQL database that is closed
// and dropped when the test ends. It skips or fails like MySQL.
func OpenMySQL(t testing.TB) *bun.DB {
	t.Helper()
	return open(t, storage.Config{Driver: storage.DriverMySQL, DSN: MySQL(t)})
}

// EachDialect runs fn as the subtests "sqlite" and "mysql", each on a
// freshly migrated database of its own. The mysql subtest skips or fails
// like MySQL when the server does not answer.
func EachDialect(t *testing.T, fn func(t *testing.T, db *bun.DB)) {
	t.Helper()
	dialects := []struct {
		name string
		open func(testing.TB) *bun.DB
	}{
		{storage.DriverSQLite, OpenSQLite},
		{storage.DriverMySQL, OpenMySQL},
	}
	if os.Getenv(EnvOnlySQLite) == "1" {
		dialects = dialects[:1]
	}
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			fn(t, d.open(t))
		})
	}
}

// open connects with cfg, registers the close, and migrates to the latest
// schema.
func open(t testing.TB, cfg storage.Config) *bun.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := storage.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("storagetest: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("storagetest: closing %s database: %v", cfg.Driver, err)
		}
	})
	if _, err := storage.Migrate(ctx, db); err != nil {
		t.Fatalf("storagetest: migrating %s database: %v", cfg.Driver, err)
	}
	return db
}

// unavailable skips the test, or fails it when services are required.
func unavailable(t testing.TB, service, where string, err error) {
	t.Helper()
	if os.Getenv(EnvRequireServices) == "1" {
		t.Fatalf("storagetest: %s not reachable at %s (required by %s=1): %v", service, where, EnvRequireServices, err)
	}
	t.Skipf("%s not reachable at %s: set %s=1 to make this fail: %v", service, where, EnvRequireServices, err)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// randomHex returns 2n random hex digits. crypto/rand.Read never fails.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// SmallFilesystem mounts a tmpfs of the given size (e.g. "2m") for the test
// and returns its directory, for tests of a full disk. Mounting needs root;
// without it the test skips, or fails when services are required (CI runs
// as root).
func SmallFilesystem(t testing.TB, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		msg := fmt.Sprintf("storagetest: cannot mount a small tmpfs (needs root): %v: %s", err, out)
		if os.Getenv(EnvRequireServices) == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

// FillDisk writes path until its file system is full.
func FillDisk(t testing.TB, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for chunk := make([]byte, 64<<10); ; {
		if _, err := f.Write(chunk); err != nil {
			return
		}
	}
}
