// Package sqlstorage provides `caddy.storage.msgbroker_sql`: Caddy's
// storage — TLS certificates and their keys, the pki CA's root and
// intermediates, ACME accounts, and the locks around certificate
// operations — in the broker's SQL database, so several gateway nodes
// share one CA (a client certificate issued on one node verifies on all)
// and one set of certificates.
//
// Caddyfile, in the global options:
//
//	storage msgbroker_sql {
//		database <sqlite|mysql> <dsn> {
//			max_open_conns <n>
//			max_idle_conns <n>
//			conn_max_lifetime <duration>
//			auto_migrate on|off
//		}
//		lock_ttl <duration>
//		encryption_key_file <path>
//	}
//
// The database line is the msgbroker app's own; with the same driver and
// DSN both share one connection pool. Caddy provisions storage before any
// app, and the pki app writes its CA while it is provisioned, so this
// module opens its database when provisioned (`caddy validate` connects
// too) and applies pending migrations then when auto_migrate is on (the
// default for sqlite; for mysql run `caddy msgbroker migrate up` first).
//
// encryption_key_file names the keyring file (normally the app's) that
// encrypts every value, so that a database dump does not reveal the CA's
// private keys.
//
// lock_ttl (default 30s) is how long a lock survives its holder's last
// extension; a holder extends it every third of that, so only a node that
// died, or lost its database, lets a lock lapse.
package sqlstorage

import (
	"context"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/msgbroker/caddy-msgbroker/internal/caddyfileutil"
	"github.com/msgbroker/caddy-msgbroker/internal/certstore"
	"github.com/msgbroker/caddy-msgbroker/modules/msgbroker"
	"github.com/msgbroker/caddy-msgbroker/storage"
)

func init() {
	caddy.RegisterModule(Storage{})
}

// minLockTTL keeps lock extensions (every third of the TTL) from turning
// into a stream of writes.
const minLockTTL = 3 * time.Second

// Storage is Caddy's certificate storage in the broker's database.
type Storage struct {
	// The database: the same object as the msgbroker app's `database`
	// (driver, dsn, pool limits, auto_migrate). Required.
	Database *msgbroker.DatabaseConfig `json:"database,omitempty"`

	// How long a lock outlives its holder's last extension. Default: 30s;
	// at least 3s.
	LockTTL caddy.Duration `json:"lock_ttl,omitempty"`

	// The keyring file that encrypts every value (AES-256-GCM, bound to
	// its key), normally the msgbroker app's encryption_key_file, so that
	// a database dump or backup does not reveal the CA's private keys.
	// `caddy msgbroker keys rotate` re-encrypts the values with the app's
	// keyring, and `keys retire` refuses a key that still seals one.
	// Without it values are stored as given, and a warning says so.
	EncryptionKeyFile string `json:"encryption_key_file,omitempty"`

	store   *certstore.Store
	release func() error
}

// CaddyModule returns the Caddy module information.
func (Storage) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "caddy.storage.msgbroker_sql",
		New: func() caddy.Module { return new(Storage) },
	}
}

// Provision opens (or shares) the database connection pool.
func (s *Storage) Provision(ctx caddy.Context) error {
	if err := s.Validate(); err != nil {
		return err
	}
	// Caddy's storage commands (`caddy storage export`) log with stack
	// traces from the warning level up; ours say what to do without one.
	logger := ctx.Logger().WithOptions(zap.AddStacktrace(zapcore.FatalLevel))
	store, release, err := msgbroker.AcquireDatabase(ctx, s.Database, logger)
	if err != nil {
		return fmt.Errorf("msgbroker_sql storage: %w", err)
	}
	s.release = release
	if err := requireCurrentSchema(ctx, store); err != nil {
		return err
	}
	opts := certstore.Options{LockTTL: time.Duration(s.LockTTL), Logger: logger}
	if s.EncryptionKeyFile == "" {
		logger.Warn("values are stored unencrypted: set encryption_key_file so that a database dump does not reveal the CA's private keys")
	} else {
		sealer, err := openSealer(s.EncryptionKeyFile, logger)
		if err != nil {
			return err
		}
		opts.Sealer = sealer
	}
	s.store = certstore.New(store.CertData, opts)
	return nil
}

// requireCurrentSchema fails provisioning while migrations are pending,
// with the step that fixes it: the pki app stores its CA right after this,
// and would otherwise fail on a missing table.
func requireCurrentSchema(ctx context.Context, store *storage.Store) error {
	pending, err := storage.PendingMigrations(ctx, store.DB)
	if err != nil {
		return fmt.Errorf("msgbroker_sql storage: reading the schema version: %w", err)
	}
	if pending > 0 {
		return fmt.Errorf("msgbroker_sql storage: the database schema has %d pending migration(s); apply them with 'caddy msgbroker migrate up', or set auto_migrate on", pending)
	}
	return nil
}

// Validate checks the configuration.
func (s *Storage) Validate() error {
	if s.Database == nil {
		return fmt.Errorf("msgbroker_sql storage: the database setting is required")
	}
	if s.LockTTL != 0 && time.Duration(s.LockTTL) < minLockTTL {
		return fmt.Errorf("msgbroker_sql storage: lock_ttl must be at least %s, got %s", minLockTTL, time.Duration(s.LockTTL))
	}
	return nil
}

// Cleanup releases this config's share of the connection pool; locks
// still held by its certificate operations keep working on the pool the
// next config shares.
func (s *Storage) Cleanup() error {
	if s.release == nil {
		return nil
	}
	err := s.release()
	s.release = nil
	return err
}

// CertMagicStorage returns the storage Caddy and certmagic use.
func (s *Storage) CertMagicStorage() (certmagic.Storage, error) {
	if s.store == nil {
		return nil, fmt.Errorf("msgbroker_sql storage used before it was provisioned")
	}
	return s.store, nil
}

// UnmarshalCaddyfile parses the storage block; see the package doc.
func (s *Storage) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the module name
	if d.NextArg() {
		return d.ArgErr()
	}
	err := caddyfileutil.ParseBlock(d, "storage msgbroker_sql", caddyfileutil.Options{
		"database": func(d *caddyfile.Dispenser) (err error) {
			s.Database, err = msgbroker.ParseDatabase(d)
			return err
		},
		"lock_ttl":            caddyfileutil.Duration(&s.LockTTL),
		"encryption_key_file": caddyfileutil.String(&s.EncryptionKeyFile),
	})
	if err != nil {
		return err
	}
	if s.Database == nil {
		return d.Err("storage msgbroker_sql: the database option is required")
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner      = (*Storage)(nil)
	_ caddy.Validator        = (*Storage)(nil)
	_ caddy.CleanerUpper     = (*Storage)(nil)
	_ caddy.StorageConverter = (*Storage)(nil)
	_ caddyfile.Unmarshaler  = (*Storage)(nil)
)
