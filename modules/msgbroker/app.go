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
//			tokens {
//				algorithm        HS256|EdDSA
//				signing_key_file /etc/msgbroker/jwt-ed25519.pem
//				verify_key_files /etc/msgbroker/jwt-old.pem …
//				previous_secrets {env.MSGBROKER_OLD_JWT_SECRET} …
//				access_ttl  24h
//				refresh_ttl 30d
//				issuer      msgbroker
//				audience    msgbroker-portal
//			}
//			login {
//				bcrypt_cost          12
//				hash_workers         1
//				hashes_per_second    2
//				hash_burst           10
//				max_failures         5
//				address_max_failures 20
//				lockout              15m
//			}
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
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/msgbroker/caddy-msgbroker/internal/broker"
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

	// Algorithm, keys and lifetimes of portal and admin tokens.
	Tokens *TokensConfig `json:"tokens,omitempty"`

	// Password hashing and login lockouts.
	Login *LoginConfig `json:"login,omitempty"`

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

	// Key material, loaded in Provision when it exists and generated at
	// start in development mode. The keyring slot is shared with the
	// services, so a reloaded keyring file takes effect everywhere at once.
	keys   *atomic.Pointer[keyring.Keyring]
	hasher *phone.Hasher
	jwtKey []byte

	// startup builds the services once; a pointer, because Caddy copies
	// the zero module value in CaddyModule.
	startup *startup
	stopRun context.CancelFunc
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
	a.keys = newKeyringSlot()
	a.startup = newStartup()
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
	if a.Tokens != nil {
		if err := a.Tokens.validate(); err != nil {
			return err
		}
	}
	if a.Login != nil {
		if err := a.Login.validate(); err != nil {
			return err
		}
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
	s, err := a.Services(context.Background())
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	a.stopRun = cancel
	// Subscribed before Start returns, so a certificate revoked and
	// announced right after the config loads is not missed.
	sub := s.Registry.Listen(runCtx, s.Redis)
	go s.Registry.Run(runCtx, time.Duration(a.RevocationPollInterval), sub)
	go a.watchKeyring(runCtx, keyringWatchInterval)
	return nil
}

// Stop ends the registry's refresh loop and the keyring watcher. Pooled
// connections are released in Cleanup, after the next config has taken
// them over.
func (a *App) Stop() error {
	if a.stopRun != nil {
		a.stopRun()
	}
	return nil
}

// Cleanup releases this config's hold on pooled connections; the last
// config to let go of a connection pool closes it.
func (a *App) Cleanup() error {
	var errs []error
	if a.startup != nil {
		errs = append(errs, a.startup.release())
	}
	if a.metrics != nil {
		errs = append(errs, releaseMetrics())
	}
	return errors.Join(errs...)
}

// Services returns the broker's services, building them on first use.
// Handlers call it too, because Caddy starts apps in no fixed order and the
// HTTP app may serve a request before this app's Start has run. The caller's
// ctx bounds only its own wait (a TLS handshake gives up at its deadline);
// the work runs on its own context, so a cancelled request cannot fail the
// whole config.
func (a *App) Services(ctx context.Context) (*Services, error) {
	s, err := a.startup.wait(ctx, a.acquire)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotReady, err)
	}
	return s, nil
}

// acquireTimeout bounds opening, migrating and loading at start.
const acquireTimeout = 2 * time.Minute

// acquire opens this config's pooled resources and builds the services
// over them. What it acquired is recorded in st even when it fails, so
// Cleanup releases it.
func (a *App) acquire(ctx context.Context, st *startup) (*Services, error) {
	if err := a.generateDevKeys(); err != nil {
		return nil, err
	}
	db, err := acquireDB(ctx, a.Database, a.logger)
	if err != nil {
		return nil, err
	}
	st.db = db
	parts := serviceParts{
		store:         db.store,
		keyring:       a.keys,
		keyringPath:   a.secrets.keyringPath,
		hasher:        a.hasher,
		jwtKey:        a.jwtKey,
		tokens:        a.Tokens,
		login:         a.Login,
		portalMetrics: a.metrics.portal(),
		certStorage:   a.ctx.Storage(),
		caID:          a.CA,
		maxBodyChars:  a.MaxBodyChars,
		logger:        a.logger,
		issued:        a.metrics.CertificatesIssued,
		revoked:       a.metrics.CertificatesRevoked,
	}
	if ca, err := a.certificateAuthority(); err == nil {
		parts.caName = ca.Name
	}
	if a.Redis != nil {
		rdb, err := acquireRedis(ctx, a.Redis, a.logger)
		if err != nil {
			return nil, err
		}
		st.redis = rdb
		parts.redis = rdb.client
	}
	st.batcher = storage.NewMessageBatcher(db.store.Messages, 0, 0)
	parts.inserter = st.batcher
	s, err := buildServices(parts)
	if err != nil {
		return nil, err
	}
	s.AutoMigrate = a.Database.autoMigrate()
	if scfg, err := a.Database.storageConfig(); err == nil {
		s.Database = describeDatabase(scfg)
	}
	if err := s.Registry.Refresh(ctx); err != nil {
		return nil, err
	}
	return s, nil
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

// ErrNotReady is returned by Services when the app could not acquire its
// resources.
var ErrNotReady = errors.New("msgbroker app is not ready")

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
