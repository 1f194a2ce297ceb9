package msgbroker

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"
	"go.uber.org/zap"

	"github.com/msgbroker/caddy-msgbroker/storage"
)

// pool shares database and Redis connections across config reloads: the new
// config is started before the old one is cleaned up, so a reload takes one
// more reference and the old config drops one, and nothing reconnects.
var pool = caddy.NewUsagePool()

// sharedDB is a database connection pool shared by every loaded config
// with the same DSN; it is closed when the last of them is cleaned up.
type sharedDB struct {
	db    *bun.DB
	store *storage.Store
}

func (r *sharedDB) Destruct() error { return r.db.Close() }

// dbLease is one config's hold on a sharedDB.
type dbLease struct {
	key string
	*sharedDB
}

func (p *dbLease) release() error {
	_, err := pool.Delete(p.key)
	return err
}

// AcquireDatabase opens cfg's database, or takes a share of the pool that
// the app or another module of a loaded config holds for the same driver
// and DSN, and returns its store and the release to call on Cleanup. This
// is how the storage module, which Caddy provisions before any app, and
// the app share one connection pool (for SQLite: one writer).
func AcquireDatabase(ctx context.Context, cfg *DatabaseConfig, logger *zap.Logger) (*storage.Store, func() error, error) {
	if err := cfg.validate(); err != nil {
		return nil, nil, err
	}
	lease, err := acquireDB(ctx, cfg, logger)
	if err != nil {
		return nil, nil, err
	}
	return lease.store, lease.release, nil
}

// sqliteFile is the absolute path of a SQLite database given by a plain
// path, which a log should name: a relative DSN means the working
// directory, and a command run from elsewhere (`caddy storage export`)
// opens another file than the gateway. Empty for anything else.
func sqliteFile(cfg storage.Config) string {
	path, _, _ := strings.Cut(cfg.DSN, "?")
	if cfg.Driver != storage.DriverSQLite || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return ""
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return path
	}
	return abs
}

func acquireDB(ctx context.Context, cfg *DatabaseConfig, logger *zap.Logger) (*dbLease, error) {
	scfg, err := cfg.storageConfig()
	if err != nil {
		return nil, err
	}
	key := "db|" + scfg.Driver + "|" + scfg.DSN
	val, loaded, err := pool.LoadOrNew(key, func() (caddy.Destructor, error) {
		return openDB(ctx, scfg, cfg.autoMigrate(), logger)
	})
	if err != nil {
		return nil, err
	}
	res := val.(*sharedDB)
	if !loaded {
		logger.Info("database opened", zap.String("driver", scfg.Driver),
			zap.String("dsn", storage.RedactDSN(scfg.Driver, scfg.DSN)), zap.String("file", sqliteFile(scfg)))
	} else if err := res.reconfigure(ctx, scfg, cfg.autoMigrate(), logger); err != nil {
		_, _ = pool.Delete(key)
		return nil, err
	}
	return &dbLease{key: key, sharedDB: res}, nil
}

// reconfigure applies a reloaded config to a pool that survived the
// reload: its limits, and pending migrations when auto_migrate is on (a
// no-op when there are none).
func (r *sharedDB) reconfigure(ctx context.Context, cfg storage.Config, migrate bool, logger *zap.Logger) error {
	storage.ApplyPoolLimits(r.db, cfg)
	if !migrate {
		return nil
	}
	applied, err := storage.Migrate(ctx, r.db)
	if err != nil {
		return fmt.Errorf("migrating %s database: %w", cfg.Driver, err)
	}
	if len(applied) > 0 {
		logger.Info("database migrated", zap.Strings("applied", applied))
	}
	return nil
}

func openDB(ctx context.Context, cfg storage.Config, migrate bool, logger *zap.Logger) (*sharedDB, error) {
	openCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	db, err := storage.Open(openCtx, cfg)
	if err != nil {
		return nil, fmt.Errorf("opening %s database %s: %w", cfg.Driver, storage.RedactDSN(cfg.Driver, cfg.DSN), err)
	}
	if migrate {
		applied, err := storage.Migrate(openCtx, db)
		if err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("migrating %s database: %w", cfg.Driver, err)
		}
		if len(applied) > 0 {
			logger.Info("database migrated", zap.Strings("applied", applied))
		}
	}
	return &sharedDB{db: db, store: storage.New(db)}, nil
}

// sharedRedis is a Redis client shared by every loaded config with the
// same address and credentials.
type sharedRedis struct {
	client *redis.Client
}

func (r *sharedRedis) Destruct() error { return r.client.Close() }

// redisLease is one config's hold on a sharedRedis.
type redisLease struct {
	key string
	*sharedRedis
}

func (p *redisLease) release() error {
	_, err := pool.Delete(p.key)
	return err
}

func acquireRedis(ctx context.Context, cfg *RedisConfig, logger *zap.Logger) (*redisLease, error) {
	rc, err := cfg.resolved()
	if err != nil {
		return nil, err
	}
	// The password is part of the key so that a rotated password opens a
	// new client rather than reusing one that would fail to authenticate.
	key := fmt.Sprintf("redis|%s|%d|%s|%s|%t", rc.Address, rc.DB, rc.Username, rc.Password, rc.TLS)
	val, loaded, err := pool.LoadOrNew(key, func() (caddy.Destructor, error) {
		client := redis.NewClient(rc.options())
		// A Redis outage at start must not stop the gateway: Redis only
		// speeds up revocation fan-out, so report it and carry on.
		pingCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if err := client.Ping(pingCtx).Err(); err != nil {
			logger.Warn("redis not reachable at start; continuing", zap.String("address", rc.Address), zap.Error(err))
		}
		return &sharedRedis{client: client}, nil
	})
	if err != nil {
		return nil, err
	}
	if !loaded {
		logger.Info("redis client created", zap.String("address", rc.Address), zap.Int("db", rc.DB))
	}
	return &redisLease{key: key, sharedRedis: val.(*sharedRedis)}, nil
}
