package msgbroker

import (
	"context"
	"fmt"
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

// dbResource is the pooled value; it closes the bun DB when the last config
// using it is cleaned up.
type dbResource struct {
	db    *bun.DB
	store *storage.Store
}

func (r *dbResource) Destruct() error { return r.db.Close() }

// pooledDB is one config's reference to a pooled database.
type pooledDB struct {
	key string
	*dbResource
}

func (p *pooledDB) release() error {
	_, err := pool.Delete(p.key)
	return err
}

func acquireDB(ctx context.Context, cfg *DatabaseConfig, logger *zap.Logger) (*pooledDB, error) {
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
	res := val.(*dbResource)
	if !loaded {
		logger.Info("database opened", zap.String("driver", scfg.Driver),
			zap.String("dsn", storage.RedactDSN(scfg.Driver, scfg.DSN)))
	} else if err := res.reconfigure(ctx, scfg, cfg.autoMigrate(), logger); err != nil {
		_, _ = pool.Delete(key)
		return nil, err
	}
	return &pooledDB{key: key, dbResource: res}, nil
}

// reconfigure applies a reloaded config to a pool that survived the
// reload: its limits, and pending migrations when auto_migrate is on (a
// no-op when there are none).
func (r *dbResource) reconfigure(ctx context.Context, cfg storage.Config, migrate bool, logger *zap.Logger) error {
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

func openDB(ctx context.Context, cfg storage.Config, migrate bool, logger *zap.Logger) (*dbResource, error) {
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
	return &dbResource{db: db, store: storage.New(db)}, nil
}

// redisResource is the pooled Redis client.
type redisResource struct {
	client *redis.Client
}

func (r *redisResource) Destruct() error { return r.client.Close() }

type pooledRedis struct {
	key string
	*redisResource
}

func (p *pooledRedis) release() error {
	_, err := pool.Delete(p.key)
	return err
}

func acquireRedis(ctx context.Context, cfg *RedisConfig, logger *zap.Logger) (*pooledRedis, error) {
	rc, err := cfg.resolved()
	if err != nil {
		return nil, err
	}
	// The password is part of the key so that a rotated password opens a
	// new client rather than reusing one that would fail to authenticate.
	key := fmt.Sprintf("redis|%s|%d|%s|%s|%t", rc.Address, rc.DB, rc.Username, rc.Password, rc.TLS)
	val, loaded, err := pool.LoadOrNew(key, func() (caddy.Destructor, error) {
		client := redis.NewClient(&redis.Options{
			Addr:      rc.Address,
			Username:  rc.Username,
			Password:  rc.Password,
			DB:        rc.DB,
			TLSConfig: rc.tlsConfig(),
		})
		// A Redis outage at start must not stop the gateway: Redis only
		// speeds up revocation fan-out, so report it and carry on.
		pingCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if err := client.Ping(pingCtx).Err(); err != nil {
			logger.Warn("redis not reachable at start; continuing", zap.String("address", rc.Address), zap.Error(err))
		}
		return &redisResource{client: client}, nil
	})
	if err != nil {
		return nil, err
	}
	if !loaded {
		logger.Info("redis client created", zap.String("address", rc.Address), zap.Int("db", rc.DB))
	}
	return &pooledRedis{key: key, redisResource: val.(*redisResource)}, nil
}
