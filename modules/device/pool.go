package device

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"

	"github.com/msgbroker/caddy-msgbroker/internal/devicecrypto"
	"github.com/msgbroker/caddy-msgbroker/internal/directory"
	"github.com/msgbroker/caddy-msgbroker/internal/sessions"
)

// pool holds what survives config reloads: key pools (their keys took
// seconds of CPU), WordPress connection pools, Redis clients and the
// in-process stores (whose sessions would otherwise end at every reload).
var pool = caddy.NewUsagePool()

type pooled[T any] struct {
	value   T
	destroy func() error
}

func (p *pooled[T]) Destruct() error {
	if p.destroy == nil {
		return nil
	}
	return p.destroy()
}

// acquire loads or makes the pooled value under key and remembers to
// release it at Cleanup.
func acquire[T any](h *Handler, key string, make func() (T, func() error, error)) (T, error) {
	val, _, err := pool.LoadOrNew(key, func() (caddy.Destructor, error) {
		v, destroy, err := make()
		if err != nil {
			return nil, err
		}
		return &pooled[T]{value: v, destroy: destroy}, nil
	})
	if err != nil {
		var zero T
		return zero, err
	}
	h.mu.Lock()
	h.leases = append(h.leases, key)
	h.mu.Unlock()
	return val.(*pooled[T]).value, nil
}

func (h *Handler) acquireKeyPool() (*devicecrypto.KeyPool, error) {
	return acquire(h, fmt.Sprintf("keys|%d|%d", h.KeyBits, h.KeyPool), func() (*devicecrypto.KeyPool, func() error, error) {
		p, err := devicecrypto.NewKeyPool(h.KeyPool, h.KeyBits)
		if err != nil {
			return nil, nil, fmt.Errorf("msgbroker_device: %w", err)
		}
		return p, func() error { p.Close(); return nil }, nil
	})
}

func (h *Handler) acquireWordPress() (*sql.DB, error) {
	dsn, err := caddy.NewReplacer().ReplaceOrErr(h.WordPress.DSN, true, true)
	if err != nil {
		return nil, fmt.Errorf("msgbroker_device: wordpress dsn: %w", err)
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("msgbroker_device: wordpress dsn: %w", err)
	}
	return acquire(h, "wordpress|"+dsn, func() (*sql.DB, func() error, error) {
		connector, err := mysql.NewConnector(cfg)
		if err != nil {
			return nil, nil, fmt.Errorf("msgbroker_device: wordpress dsn: %w", err)
		}
		db := sql.OpenDB(connector)
		db.SetMaxOpenConns(16)
		db.SetMaxIdleConns(4)
		db.SetConnMaxLifetime(5 * time.Minute)
		return db, db.Close, nil
	})
}

// acquireMemoryStores takes the in-process stores at provisioning, so the
// new config holds them before a reload cleans up the old one (taken at
// the first request, they were dropped with the old config and every
// session ended at each reload).
func (h *Handler) acquireMemoryStores() error {
	ttl, msgTTL := time.Duration(h.SessionTTL), time.Duration(h.MessageTTL)
	var err error
	if h.memSessions, err = acquire(h, fmt.Sprintf("memory-sessions|%s", ttl), func() (sessions.Store, func() error, error) {
		return sessions.NewMemory(ttl), nil, nil
	}); err != nil {
		return err
	}
	h.memMessages, err = acquire(h, fmt.Sprintf("memory-messages|%s|%d", msgTTL, h.MemoryMessages), func() (sessions.MessageStore, func() error, error) {
		return sessions.NewMemoryMessages(msgTTL, h.MemoryMessages), nil, nil
	})
	return err
}

// runtime builds, once the app's services are ready, the directory and
// the stores. A failure (the app not started yet) is retried at the next
// request.
func (h *Handler) runtime(ctx context.Context) (*runtime, error) {
	h.mu.Lock()
	rt := h.rt
	h.mu.Unlock()
	if rt != nil {
		return rt, nil
	}
	svcs, err := h.app.Services(ctx)
	if err != nil {
		return nil, err
	}
	rt = new(runtime)
	if h.Directory == "wordpress" {
		rt.dir = h.wordpress(h.wpDB)
	} else {
		rt.dir = directory.Builtin{Devices: svcs.Store.Devices}
	}
	ttl, msgTTL := time.Duration(h.SessionTTL), time.Duration(h.MessageTTL)
	if h.Store == "memory" {
		rt.sessions, rt.messages = h.memSessions, h.memMessages
	} else {
		base, ok := svcs.Redis.(*redis.Client)
		if !ok || base == nil {
			return nil, fmt.Errorf("msgbroker_device: store redis needs the msgbroker app's redis setting")
		}
		sessionsClient, err := h.redisDB(base, h.SessionsDB, defaultSessionsDB)
		if err != nil {
			return nil, err
		}
		messagesClient, err := h.redisDB(base, h.MessagesDB, defaultMessagesDB)
		if err != nil {
			return nil, err
		}
		rt.sessions = sessions.NewRedis(sessionsClient, "", ttl, func() sessions.Sealer {
			if kr := svcs.Keyring(); kr != nil {
				return kr
			}
			return nil
		})
		rt.messages = sessions.NewRedisMessages(messagesClient, h.MessagePrefix, msgTTL, h.Stream)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.rt == nil {
		h.rt = rt
	}
	return h.rt, nil
}

// redisDB returns a client of the app's Redis server on database db.
func (h *Handler) redisDB(base *redis.Client, db *int, def int) (*redis.Client, error) {
	opts := *base.Options()
	opts.DB = def
	if db != nil {
		opts.DB = *db
	}
	key := fmt.Sprintf("redis|%s|%s|%s|%d|%t", opts.Addr, opts.Username, opts.Password, opts.DB, opts.TLSConfig != nil)
	return acquire(h, key, func() (*redis.Client, func() error, error) {
		c := redis.NewClient(&opts)
		return c, c.Close, nil
	})
}
