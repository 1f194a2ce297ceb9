// Package msgbroker is the `msgbroker` Caddy app: it owns the broker's shared
// services — the database, the optional Redis client, the message-body
// keyring, the phone-number hasher, the JWT signing secret and the name of the
// `pki` CA that issues client certificates. HTTP handlers reach them through
// ctx.App("msgbroker").
//
// Caddyfile (global option; every option is optional and may appear
// once, and unknown or repeated options are errors naming their line):
//
//	{
//		msgbroker {
//			database sqlite ./data/msgbroker.db   # or instead:
//			database mysql {env.MSGBROKER_DB_DSN} {
//				max_open_conns    20
//				max_idle_conns    10
//				conn_max_lifetime 1h
//				auto_migrate      on|off
//			}
//			redis 127.0.0.1:6379 {
//				username {env.MSGBROKER_REDIS_USER}
//				password {env.MSGBROKER_REDIS_PASSWORD}
//				db       0
//				tls
//			}
//			encryption_key_file /etc/msgbroker/keyring.json
//			hash_key   {env.MSGBROKER_HASH_KEY}
//			jwt_secret {env.MSGBROKER_JWT_SECRET}
//			ca         local
//			revocation_poll_interval 1s
//			max_request_bytes 65536
//			max_body_chars    4096
//			dev_keys   ./data/secrets
//		}
//	}
//
// Secrets are written as runtime placeholders ({env.*}, {file.*}) so that
// they are resolved when the config is provisioned and never appear in the
// adapted JSON that Caddy's admin API serves.
//
// Side effects (creating the SQLite file, generating development keys,
// running migrations) happen when the app starts or on first use, never in
// Provision, so `caddy validate` leaves nothing behind.
package msgbroker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/internal/certregistry"
	"github.com/msgbroker/caddy-msgbroker/internal/clientca"
	"github.com/msgbroker/caddy-msgbroker/internal/keyring"
	"github.com/msgbroker/caddy-msgbroker/internal/phone"
	"github.com/msgbroker/caddy-msgbroker/storage"
)

func init() {
	caddy.RegisterModule(App{})
}

// AppName is the name handlers pass to ctx.App to get the broker app.
const AppName = "msgbroker"

// App is the `msgbroker` app. Exactly one exists per config.
type App struct {
	// The database holding messages, users, issued client certificates,
	// the audit log and refresh tokens. Default: SQLite at ./data/msgbroker.db.
	Database *DatabaseConfig `json:"database,omitempty"`

	// Optional Redis, used to fan revocations out to every node and as the
	// production store of device sessions. Without it, in-process stores
	// serve a single node.
	Redis *RedisConfig `json:"redis,omitempty"`

	// Path of the JSON keyring used to encrypt message bodies at rest
	// (AES-256-GCM; the newest key encrypts, every key decrypts). Required
	// unless dev_keys_dir is set, in which case it defaults to
	// <dev_keys_dir>/keyring.json.
	EncryptionKeyFile string `json:"encryption_key_file,omitempty"`

	// Secret key for HMAC-SHA-256 hashing of phone numbers (at least 16
	// bytes; 32 random bytes recommended). Use a placeholder such as
	// {env.MSGBROKER_HASH_KEY} or {file./run/secrets/hash_key}.
	HashKey string `json:"hash_key,omitempty"`

	// Secret used to sign JWT access and refresh tokens (at least 32
	// bytes). Use a placeholder such as {env.MSGBROKER_JWT_SECRET}.
	JWTSecret string `json:"jwt_secret,omitempty"`

	// ID of the certificate authority of Caddy's `pki` app that issues
	// client certificates. Default: "local".
	CA string `json:"ca,omitempty"`

	// How often each node re-reads the clients table for new and revoked
	// certificates (default 1s). With Redis, changes also arrive at once by
	// pub/sub; the poll is the safety net and the only path without it.
	RevocationPollInterval caddy.Duration `json:"revocation_poll_interval,omitempty"`

	// Limits of the internal API's register endpoint: the largest request
	// body in bytes (default 64 KiB) and the longest message body in
	// characters (default 4096).
	MaxRequestBytes int64 `json:"max_request_bytes,omitempty"`
	MaxBodyChars    int   `json:"max_body_chars,omitempty"`

	// Development only: a directory where missing keys (keyring, hash key,
	// JWT secret) are generated on first start with mode 0600. Never set
	// this in production; the app logs a loud warning when it is used.
	DevKeysDir string `json:"dev_keys_dir,omitempty"`

	ctx     caddy.Context
	logger  *zap.Logger
	secrets resolvedSecrets
	metrics *Metrics

	// pointers, because Caddy copies the zero module value in CaddyModule
	initOnce *sync.Once
	initErr  error
	mu       *sync.RWMutex
	db       *pooledDB
	redis    *pooledRedis
	keys     *keyring.Keyring
	hasher   *phone.Hasher
	jwtKey   []byte
	registry *certregistry.Registry
	messages *broker.Messages
	certs    *broker.Certificates
	batcher  *storage.MessageBatcher
	stopRun  context.CancelFunc
}

// Defaults of the app's tunables.
const (
	DefaultRevocationPollInterval = time.Second
	DefaultMaxRequestBytes        = 64 << 10
)

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  AppName,
		New: func() caddy.Module { return new(App) },
	}
}

// Provision resolves placeholders, applies defaults and loads the keys that
// already exist. It opens no connection and writes no file.
func (a *App) Provision(ctx caddy.Context) error {
	a.ctx = ctx
	a.logger = ctx.Logger()
	a.initOnce = new(sync.Once)
	a.mu = new(sync.RWMutex)
	a.applyDefaults()

	secrets, err := resolveSecrets(a)
	if err != nil {
		return err
	}
	a.secrets = secrets
	if err := a.loadExistingKeys(); err != nil {
		return err
	}

	metrics, err := sharedMetrics()
	if err != nil {
		return err
	}
	a.metrics = metrics
	return metrics.register(ctx.GetMetricsRegistry(), a)
}

func (a *App) applyDefaults() {
	if a.Database == nil {
		a.Database = &DatabaseConfig{Driver: "sqlite", DSN: "./data/msgbroker.db"}
	}
	if a.CA == "" {
		a.CA = "local"
	}
	if a.RevocationPollInterval == 0 {
		a.RevocationPollInterval = caddy.Duration(DefaultRevocationPollInterval)
	}
	if a.MaxRequestBytes == 0 {
		a.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if a.MaxBodyChars == 0 {
		a.MaxBodyChars = broker.DefaultMaxBodyChars
	}
}

// Validate checks the configuration without touching anything outside the
// process.
func (a *App) Validate() error {
	if err := a.Database.validate(); err != nil {
		return err
	}
	if a.Redis != nil {
		return a.Redis.validate()
	}
	return nil
}

// Start opens the database and Redis, generates development keys when
// configured to, and runs migrations when auto_migrate is on. A failure here
// fails the config load, so a broken deployment is refused at once.
func (a *App) Start() error {
	if err := a.ensureReady(a.ctx); err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	a.stopRun = cancel
	rdb, _ := a.RedisClient(runCtx)
	go a.registry.Run(runCtx, time.Duration(a.RevocationPollInterval), rdb)
	go a.watchKeyring(runCtx, keyringWatchInterval)
	return nil
}

// Stop ends the registry's refresh loop. Pooled connections are released in
// Cleanup, after the next config has taken them over.
func (a *App) Stop() error {
	if a.stopRun != nil {
		a.stopRun()
	}
	return nil
}

// Cleanup releases this config's references to pooled connections; the last
// config to let go of a connection pool closes it.
func (a *App) Cleanup() error {
	if a.mu == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.batcher != nil {
		// Requests still on this config's handlers insert directly from
		// here on; nothing queued is dropped.
		a.batcher.Stop()
	}
	var errs []error
	if a.db != nil {
		errs = append(errs, a.db.release())
		a.db = nil
	}
	if a.redis != nil {
		errs = append(errs, a.redis.release())
		a.redis = nil
	}
	if a.metrics != nil {
		errs = append(errs, releaseMetrics())
	}
	return errors.Join(errs...)
}

// acquireTimeout bounds opening, migrating and loading at start.
const acquireTimeout = 2 * time.Minute

// ensureReady acquires the pooled resources once. Handlers call it through
// the accessors too, because Caddy starts apps in no fixed order and the
// HTTP app may serve a request before this app's Start has run. The work
// runs on its own context, never the first caller's: a cancelled request
// or a short handshake deadline must not fail the whole config.
func (a *App) ensureReady(context.Context) error {
	a.initOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), acquireTimeout)
		defer cancel()
		a.initErr = a.acquire(ctx)
	})
	return a.initErr
}

func (a *App) acquire(ctx context.Context) error {
	if err := a.generateDevKeys(); err != nil {
		return err
	}
	db, err := acquireDB(ctx, a.Database, a.logger)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.db = db
	a.mu.Unlock()

	if a.Redis != nil {
		rdb, err := acquireRedis(ctx, a.Redis, a.logger)
		if err != nil {
			return err
		}
		a.mu.Lock()
		a.redis = rdb
		a.mu.Unlock()
	}

	registry := certregistry.NewRegistry(db.store.Clients, a.logger.Named("clients"))
	if err := registry.Refresh(ctx); err != nil {
		return err
	}
	a.mu.Lock()
	a.registry = registry
	a.batcher = storage.NewMessageBatcher(db.store.Messages, 0, 0)
	a.messages = &broker.Messages{
		Store:        db.store,
		Inserter:     a.batcher,
		Keys:         a.Keyring,
		Hasher:       a.PhoneHasher,
		MaxBodyChars: a.MaxBodyChars,
	}
	a.mu.Unlock()
	return a.buildCertificates(db.store, registry)
}

// buildCertificates sets up the one certificate issuer, over the CA keys in
// Caddy's storage, where the pki app keeps them.
func (a *App) buildCertificates(store *storage.Store, registry *certregistry.Registry) error {
	name := ""
	if ca, err := a.certificateAuthority(); err == nil {
		name = ca.Name
	}
	issuer, err := clientca.New(clientca.Config{CAID: a.CA, Name: name, Storage: a.ctx.Storage()})
	if err != nil {
		return fmt.Errorf("msgbroker: setting up the client certificate issuer: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.certs = &broker.Certificates{
		Store:   store,
		Issuer:  issuer,
		Logger:  a.logger,
		Issued:  a.metrics.CertificatesIssued,
		Revoked: a.metrics.CertificatesRevoked,
		Announce: func(ctx context.Context, serial string) {
			rdb, _ := a.RedisClient(ctx)
			if err := registry.Announce(ctx, serial, rdb); err != nil {
				a.logger.Warn("refreshing the client registry after a change failed; the poll will catch up",
					zap.String("serial", serial), zap.Error(err))
			}
		},
	}
	return nil
}

// CertmagicStorage returns Caddy's storage, where the pki app keeps its CA
// keys and the issuer its client-issuing intermediate.
func (a *App) CertmagicStorage() certmagic.Storage { return a.ctx.Storage() }

// Certificates returns the client-certificate service.
func (a *App) Certificates(ctx context.Context) (*broker.Certificates, error) {
	if err := a.ensureReady(ctx); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotReady, err)
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.certs, nil
}

// Registry returns the in-memory registry of client certificates.
func (a *App) Registry(ctx context.Context) (*certregistry.Registry, error) {
	if err := a.ensureReady(ctx); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotReady, err)
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.registry, nil
}

// Messages returns the message service.
func (a *App) Messages(ctx context.Context) (*broker.Messages, error) {
	if err := a.ensureReady(ctx); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotReady, err)
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.messages, nil
}

// From returns the msgbroker app of the config ctx belongs to, for the
// modules (handlers, the verifier) that work with its services.
func From(ctx caddy.Context) (*App, error) {
	app, err := ctx.App(AppName)
	if err != nil {
		return nil, err
	}
	return app.(*App), nil
}

// ErrNotReady is returned by the accessors when the app could not acquire
// its resources.
var ErrNotReady = errors.New("msgbroker app is not ready")

// Store returns the repositories over the app's database.
func (a *App) Store(ctx context.Context) (*storage.Store, error) {
	if err := a.ensureReady(ctx); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotReady, err)
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.db == nil {
		return nil, ErrNotReady
	}
	return a.db.store, nil
}

// Redis returns the shared Redis client, or nil when Redis is not configured.
func (a *App) RedisClient(ctx context.Context) (redis.UniversalClient, error) {
	if err := a.ensureReady(ctx); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotReady, err)
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.redis == nil {
		return nil, nil
	}
	return a.redis.client, nil
}

// Keyring returns the keyring that encrypts message bodies.
func (a *App) Keyring() *keyring.Keyring {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.keys
}

// PhoneHasher returns the keyed hasher for phone numbers.
func (a *App) PhoneHasher() *phone.Hasher {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.hasher
}

// JWTKey returns the secret that signs JWTs.
func (a *App) JWTKey() []byte {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.jwtKey
}

// Logger returns the app's logger.
func (a *App) Logger() *zap.Logger { return a.logger }

// Metrics returns the broker's Prometheus collectors.
func (a *App) Metrics() *Metrics { return a.metrics }

// now is the app's clock; a function so tests of time-dependent health
// states stay readable.
func now() time.Time { return time.Now().UTC() }

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.Validator    = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
