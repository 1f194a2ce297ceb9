// Package storage is the database layer of the message broker: connection
// setup for MySQL/MariaDB and SQLite, the embedded schema migrations, the bun
// models and one repository per table.
//
// It deliberately depends on nothing from Caddy so that the admin CLI and
// tests can use it directly.
package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/mysqldialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"

	// Registers the pure-Go "sqlite" database/sql driver.
	_ "modernc.org/sqlite"
)

// Supported values of Config.Driver.
const (
	DriverSQLite = "sqlite"
	DriverMySQL  = "mysql"
)

// Pool defaults applied when the corresponding Config field is zero.
const (
	DefaultMySQLMaxOpenConns  = 20
	DefaultSQLiteMaxOpenConns = 8
	DefaultConnMaxLifetime    = time.Hour
)

// Config describes how to reach the database.
type Config struct {
	// Driver is DriverSQLite or DriverMySQL.
	Driver string
	// DSN is, for SQLite, a file path or a "file:" URI (":memory:" gives a
	// private in-memory database); for MySQL, a go-sql-driver DSN such as
	// "user:pass@tcp(host:3306)/db".
	DSN string
	// MaxOpenConns caps the connection pool; 0 selects
	// DefaultMySQLMaxOpenConns or DefaultSQLiteMaxOpenConns.
	MaxOpenConns int
	// MaxIdleConns is the number of idle connections kept; 0 keeps as many as
	// MaxOpenConns.
	MaxIdleConns int
	// ConnMaxLifetime recycles MySQL connections; 0 selects
	// DefaultConnMaxLifetime. SQLite connections live forever.
	ConnMaxLifetime time.Duration
}

// Open connects to the database described by cfg, verifies the connection
// and returns a bun handle. It does not run migrations; see Migrate.
//
// For MySQL, Open forces parseTime, UTC for both the driver and the session
// time zone, utf8mb4 and clientFoundRows; the latter makes UPDATE report the
// rows it matched rather than the rows it changed, as SQLite does, so
// "no row affected" means "no such row" on both drivers.
func Open(ctx context.Context, cfg Config) (*bun.DB, error) {
	switch cfg.Driver {
	case DriverMySQL:
		return openMySQL(ctx, cfg)
	case DriverSQLite:
		return openSQLite(ctx, cfg)
	default:
		return nil, fmt.Errorf("unsupported database driver %q (want %q or %q)", cfg.Driver, DriverSQLite, DriverMySQL)
	}
}

// Dialect reports which database db talks to: "mysql" or "sqlite".
func Dialect(db *bun.DB) string {
	return db.Dialect().Name().String()
}

// RedactDSN returns dsn in a form safe to log: a MySQL password is replaced
// by "***". A DSN that cannot be parsed is not echoed at all, since it may
// still contain a secret.
func RedactDSN(driver, dsn string) string {
	switch driver {
	case DriverSQLite:
		return dsn
	case DriverMySQL:
		mc, err := mysql.ParseDSN(dsn)
		if err != nil {
			return "(invalid mysql dsn)"
		}
		return redactMySQL(mc)
	default:
		return "(redacted)"
	}
}

func redactMySQL(mc *mysql.Config) string {
	mc = mc.Clone()
	if mc.Passwd != "" {
		mc.Passwd = "***"
	}
	return mc.FormatDSN()
}

func openMySQL(ctx context.Context, cfg Config) (*bun.DB, error) {
	mc, err := mysql.ParseDSN(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("parsing mysql dsn: %w", err)
	}
	mc.ParseTime = true
	mc.Loc = time.UTC
	mc.ClientFoundRows = true
	if err := mc.Apply(mysql.Charset("utf8mb4", "utf8mb4_unicode_ci")); err != nil {
		return nil, fmt.Errorf("configuring mysql charset: %w", err)
	}
	if mc.Params == nil {
		mc.Params = make(map[string]string)
	}
	// CURRENT_TIMESTAMP defaults and NOW() must produce UTC like the values
	// bun writes, whatever the server's own zone is.
	mc.Params["time_zone"] = "'+00:00'"

	connector, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, fmt.Errorf("configuring mysql connector for %s: %w", redactMySQL(mc), err)
	}
	sqldb := sql.OpenDB(connector)
	setPoolLimits(sqldb, DriverMySQL, cfg)

	// Ping before bun.NewDB: the MySQL dialect queries the server version
	// without a context while it is being created.
	if err := sqldb.PingContext(ctx); err != nil {
		_ = sqldb.Close()
		return nil, fmt.Errorf("connecting to mysql %s: %w", redactMySQL(mc), err)
	}
	// bun renders time values into the SQL text itself, so the dialect must
	// convert them to UTC; the driver's Loc only governs what is read back.
	return bun.NewDB(sqldb, mysqldialect.New(mysqldialect.WithTimeLocation("UTC"))), nil
}

// ApplyPoolLimits sets cfg's pool limits on an open database, so a config
// reload that changes them takes effect on the pool it keeps. An in-memory
// SQLite database keeps its single connection.
func ApplyPoolLimits(db *bun.DB, cfg Config) {
	if Dialect(db) == DriverSQLite {
		if d, err := parseSQLiteDSN(cfg.DSN); err != nil || d.memory {
			return
		}
	}
	setPoolLimits(db.DB, Dialect(db), cfg)
}

func setPoolLimits(sqldb *sql.DB, driver string, cfg Config) {
	defaultOpen := DefaultSQLiteMaxOpenConns
	if driver == DriverMySQL {
		defaultOpen = DefaultMySQLMaxOpenConns
		sqldb.SetConnMaxLifetime(orDefault(cfg.ConnMaxLifetime, DefaultConnMaxLifetime))
	}
	maxOpen := orDefault(cfg.MaxOpenConns, defaultOpen)
	sqldb.SetMaxOpenConns(maxOpen)
	sqldb.SetMaxIdleConns(orDefault(cfg.MaxIdleConns, maxOpen))
}

func openSQLite(ctx context.Context, cfg Config) (*bun.DB, error) {
	dsn, err := parseSQLiteDSN(cfg.DSN)
	if err != nil {
		return nil, err
	}
	if !dsn.memory {
		if err := prepareSQLiteFile(dsn.path); err != nil {
			return nil, err
		}
	}

	var sqldb *sql.DB
	if dsn.memory {
		if sqldb, err = sql.Open(DriverSQLite, dsn.String()); err != nil {
			return nil, fmt.Errorf("opening sqlite database %s: %w", cfg.DSN, err)
		}
	} else {
		guard, err := newFileGuard(dsn.path)
		if err != nil {
			return nil, err
		}
		sqldb = sql.OpenDB(connector{driver: newGuardedDriver(guard), name: dsn.String()})
	}
	if dsn.memory {
		// Every connection to ":memory:" is a separate, empty database, so
		// the pool must hold exactly one connection and never recycle it.
		sqldb.SetMaxOpenConns(1)
		sqldb.SetMaxIdleConns(1)
		sqldb.SetConnMaxLifetime(0)
	} else {
		setPoolLimits(sqldb, DriverSQLite, cfg)
	}
	if err := sqldb.PingContext(ctx); err != nil {
		_ = sqldb.Close()
		return nil, fmt.Errorf("opening sqlite database %s: %w", cfg.DSN, err)
	}
	return bun.NewDB(sqldb, sqlitedialect.New()), nil
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// sqliteDSN is a parsed SQLite DSN: a plain path or a "file:" URI plus the
// driver's query parameters.
type sqliteDSN struct {
	base   string // everything before '?', passed through unchanged
	path   string // file system path of the database, empty for memory
	memory bool
	query  url.Values
}

// sqliteDefaults are applied unless the DSN already sets the same PRAGMA or
// parameter. busy_timeout makes writers wait for each other instead of
// failing; _txlock=immediate takes the write lock at BEGIN so transactions
// never fail half-way with SQLITE_BUSY; _timezone makes times read back in
// UTC.
var sqliteDefaults = []struct {
	pragma string   // PRAGMA name, or "" for a plain parameter
	key    string   // the parameter to set
	value  string   // its value
	alias  []string // the driver's shorthand keys for the same setting
}{
	{pragma: "busy_timeout", key: "_pragma", value: "busy_timeout(5000)", alias: []string{"_busy_timeout", "_timeout"}},
	{pragma: "journal_mode", key: "_pragma", value: "journal_mode(WAL)", alias: []string{"_journal_mode", "_journal"}},
	{pragma: "foreign_keys", key: "_pragma", value: "foreign_keys(1)", alias: []string{"_foreign_keys", "_fk"}},
	{pragma: "synchronous", key: "_pragma", value: "synchronous(NORMAL)", alias: []string{"_synchronous", "_sync"}},
	{key: "_txlock", value: "immediate"},
	{key: "_time_format", value: "sqlite"},
	{key: "_timezone", value: "UTC"},
}

func parseSQLiteDSN(raw string) (sqliteDSN, error) {
	if raw == "" {
		return sqliteDSN{}, errors.New("sqlite dsn is empty")
	}
	base, rawQuery, _ := strings.Cut(raw, "?")
	query, err := url.ParseQuery(rawQuery)
	if err != nil {
		return sqliteDSN{}, fmt.Errorf("parsing sqlite dsn %s: %w", raw, err)
	}
	d := sqliteDSN{base: base, path: base, query: query}
	if rest, ok := strings.CutPrefix(base, "file:"); ok {
		d.path, err = uriPath(rest)
		if err != nil {
			return sqliteDSN{}, fmt.Errorf("parsing sqlite dsn %s: %w", raw, err)
		}
	}
	d.memory = d.path == ":memory:" || d.path == "" || query.Get("mode") == "memory"
	if d.memory {
		d.path = ""
	}
	for _, def := range sqliteDefaults {
		if def.pragma == "journal_mode" && d.memory {
			continue // in-memory databases cannot use WAL
		}
		if !d.has(def.pragma, def.key, def.alias) {
			d.query.Add(def.key, def.value)
		}
	}
	return d, nil
}

// uriPath extracts the file system path from the part of a SQLite URI after
// "file:", dropping an empty or "localhost" authority as SQLite does.
func uriPath(rest string) (string, error) {
	if after, ok := strings.CutPrefix(rest, "//"); ok {
		authority, path, _ := strings.Cut(after, "/")
		if authority != "" && authority != "localhost" {
			return "", fmt.Errorf("unsupported authority %q in sqlite uri", authority)
		}
		rest = "/" + path
	}
	return url.PathUnescape(rest)
}

// has reports whether the DSN already configures a setting, either with a
// _pragma value or one of the driver's shorthand keys.
func (d sqliteDSN) has(pragma, key string, aliases []string) bool {
	if pragma == "" {
		return d.query.Has(key)
	}
	for _, alias := range aliases {
		if d.query.Has(alias) {
			return true
		}
	}
	for _, v := range d.query["_pragma"] {
		if strings.HasPrefix(strings.ToLower(strings.TrimSpace(v)), pragma) {
			return true
		}
	}
	return false
}

// String renders the DSN for the driver.
func (d sqliteDSN) String() string {
	return d.base + "?" + d.query.Encode()
}

// prepareSQLiteFile creates the database's directory and the file itself
// with owner-only permissions: SQLite would create the file world-readable,
// and its -wal and -shm files inherit the database file's mode.
func prepareSQLiteFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating directory for sqlite database %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("creating sqlite database %s: %w", path, err)
	}
	return f.Close()
}
