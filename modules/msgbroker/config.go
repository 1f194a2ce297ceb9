package msgbroker

import (
	"crypto/tls"
	"fmt"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"

	"github.com/msgbroker/caddy-msgbroker/storage"
)

// DatabaseConfig selects and tunes the SQL database.
type DatabaseConfig struct {
	// "sqlite" (embedded, pure Go; the default) or "mysql" (MySQL 8 or
	// MariaDB 10.11+).
	Driver string `json:"driver,omitempty"`

	// For sqlite, the database file path. For mysql, a go-sql-driver DSN
	// such as "user:pass@tcp(db:3306)/msgbroker"; use a placeholder like
	// {env.MSGBROKER_DB_DSN} so the password stays out of the config.
	DSN string `json:"dsn,omitempty"`

	// Maximum open connections (default: 20 for mysql, 8 for sqlite).
	MaxOpenConns int `json:"max_open_conns,omitempty"`

	// Maximum idle connections kept in the pool (default: max_open_conns).
	MaxIdleConns int `json:"max_idle_conns,omitempty"`

	// Maximum lifetime of a connection (default: 1h).
	ConnMaxLifetime caddy.Duration `json:"conn_max_lifetime,omitempty"`

	// Apply pending migrations when the app starts. Default: on for
	// sqlite, off for mysql (where `caddy msgbroker migrate up` is the
	// deliberate step).
	AutoMigrate *bool `json:"auto_migrate,omitempty"`
}

func (d *DatabaseConfig) validate() error {
	switch d.Driver {
	case "sqlite", "mysql":
	default:
		return fmt.Errorf("database: driver must be sqlite or mysql, got %q", d.Driver)
	}
	if strings.TrimSpace(d.DSN) == "" {
		return fmt.Errorf("database: %s needs a DSN", d.Driver)
	}
	if d.MaxOpenConns < 0 || d.MaxIdleConns < 0 || d.ConnMaxLifetime < 0 {
		return fmt.Errorf("database: pool limits must not be negative")
	}
	return nil
}

func (d *DatabaseConfig) autoMigrate() bool {
	if d.AutoMigrate != nil {
		return *d.AutoMigrate
	}
	return d.Driver == "sqlite"
}

// storageConfig resolves placeholders in the DSN and returns the config the
// storage package opens.
func (d *DatabaseConfig) storageConfig() (storage.Config, error) {
	dsn, err := caddy.NewReplacer().ReplaceOrErr(d.DSN, true, true)
	if err != nil {
		return storage.Config{}, fmt.Errorf("database: resolving dsn: %w", err)
	}
	return storage.Config{
		Driver:          d.Driver,
		DSN:             dsn,
		MaxOpenConns:    d.MaxOpenConns,
		MaxIdleConns:    d.MaxIdleConns,
		ConnMaxLifetime: time.Duration(d.ConnMaxLifetime),
	}, nil
}

// RedisConfig points at a Redis server.
type RedisConfig struct {
	// host:port of the server.
	Address string `json:"address,omitempty"`

	// ACL user name, if any.
	Username string `json:"username,omitempty"`

	// Password; use a placeholder such as {env.MSGBROKER_REDIS_PASSWORD}.
	Password string `json:"password,omitempty"`

	// Database number for the broker's own keys (revocation fan-out).
	// The device handler selects its own databases.
	DB int `json:"db,omitempty"`

	// Connect with TLS.
	TLS bool `json:"tls,omitempty"`
}

func (r *RedisConfig) validate() error {
	if strings.TrimSpace(r.Address) == "" {
		return fmt.Errorf("redis: address is required")
	}
	if r.DB < 0 {
		return fmt.Errorf("redis: db must not be negative")
	}
	return nil
}

// resolved returns a copy with placeholders replaced.
func (r *RedisConfig) resolved() (RedisConfig, error) {
	repl := caddy.NewReplacer()
	out := *r
	var err error
	if out.Address, err = repl.ReplaceOrErr(r.Address, true, true); err != nil {
		return out, fmt.Errorf("redis: resolving address: %w", err)
	}
	if out.Username, err = repl.ReplaceOrErr(r.Username, false, true); err != nil {
		return out, fmt.Errorf("redis: resolving username: %w", err)
	}
	if out.Password, err = repl.ReplaceOrErr(r.Password, false, true); err != nil {
		return out, fmt.Errorf("redis: resolving password: %w", err)
	}
	return out, nil
}

// options are the go-redis client options of a resolved config.
func (r RedisConfig) options() *redis.Options {
	return &redis.Options{Addr: r.Address, Username: r.Username, Password: r.Password, DB: r.DB, TLSConfig: r.tlsConfig()}
}

func (r RedisConfig) tlsConfig() *tls.Config {
	if !r.TLS {
		return nil
	}
	host := r.Address
	if i := strings.LastIndex(host, ":"); i > 0 {
		host = host[:i]
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
}
