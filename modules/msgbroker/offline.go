package msgbroker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

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

// Offline is the broker's services opened from a config outside a running
// Caddy, for the admin CLI. It reads the same JSON the gateway runs
// (adapted from the same Caddyfile), resolves the same placeholders, and
// builds the same services, so the CLI has no second implementation of any
// rule. Caddy cannot provision an app in a bare context, hence this.
type Offline struct {
	// App is the msgbroker app config, with defaults applied.
	App          App
	DB           *storage.Store
	Keys         *keyring.Keyring
	KeyringPath  string
	Hasher       *phone.Hasher
	Messages     *broker.Messages
	Certificates *broker.Certificates
	// Redis is nil unless the config has one.
	Redis *redis.Client
	// Storage is Caddy's storage of the config (CA keys live there).
	Storage certmagic.Storage
	// Database names the database opened, without its password, for
	// telling the operator which one it is.
	Database string

	cancel context.CancelFunc
}

// OfflineOptions tune OpenOffline.
type OfflineOptions struct {
	// SkipKeys opens only the database (for migrate commands, which must
	// work before any key exists).
	SkipKeys bool
	// Logger receives the services' warnings (default: a no-op logger).
	Logger *zap.Logger
	// BaseDir, when set, is the directory relative paths in the config
	// are taken from (the SQLite file, the keyring and development keys,
	// the file_system storage root) instead of the working directory.
	BaseDir string
}

// OpenOffline opens the services of the msgbroker app in cfgJSON (a whole
// Caddy config). Close releases them.
func OpenOffline(ctx context.Context, cfgJSON []byte, opts OfflineOptions) (*Offline, error) {
	var cfg struct {
		StorageRaw json.RawMessage            `json:"storage"`
		Apps       map[string]json.RawMessage `json:"apps"`
	}
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	raw, ok := cfg.Apps[AppName]
	if !ok {
		return nil, errors.New("the config has no msgbroker app (add the msgbroker global option)")
	}
	o := &Offline{}
	if err := json.Unmarshal(raw, &o.App); err != nil {
		return nil, fmt.Errorf("reading the msgbroker app config: %w", err)
	}
	logger := opts.Logger
	if logger == nil {
		logger = zap.NewNop()
	}
	a := &o.App
	a.logger = logger
	a.applyDefaults()
	if err := a.Database.validate(); err != nil {
		return nil, err
	}
	scfg, err := a.Database.storageConfig()
	if err != nil {
		return nil, err
	}
	if scfg.Driver == storage.DriverSQLite {
		scfg.DSN = sqliteDSNInDir(opts.BaseDir, scfg.DSN)
	}
	o.Database = describeDatabase(scfg)
	db, err := storage.Open(ctx, scfg)
	if err != nil {
		return nil, fmt.Errorf("opening %s database: %w", o.Database, err)
	}
	o.DB = storage.New(db)
	if opts.SkipKeys {
		return o, nil
	}
	if err := o.openRest(ctx, storageInDir(opts.BaseDir, cfg.StorageRaw), caName(cfg.Apps["pki"], o.App.CA), logger, opts.BaseDir); err != nil {
		_ = o.Close()
		return nil, err
	}
	return o, nil
}

// caName is the name the pki app gives the CA with the given id, as the
// running app passes it to the issuer, so that a client-issuing
// intermediate created by the CLI is named like one the gateway creates.
// Empty means the issuer's default, which is Caddy's.
func caName(pkiRaw json.RawMessage, id string) string {
	var pki struct {
		CAs map[string]struct {
			Name string `json:"name"`
		} `json:"certificate_authorities"`
	}
	if len(pkiRaw) == 0 || json.Unmarshal(pkiRaw, &pki) != nil {
		return ""
	}
	return pki.CAs[id].Name
}

func (o *Offline) openRest(ctx context.Context, storageRaw json.RawMessage, name string, logger *zap.Logger, baseDir string) error {
	a := &o.App
	secrets, err := resolveSecrets(a)
	if err != nil {
		return err
	}
	secrets.in(baseDir)
	a.secrets = secrets
	// Development secrets are read, never generated, by the CLI: the
	// gateway's first start creates them.
	if err := a.loadExistingKeys(); err != nil {
		return err
	}
	if a.keys == nil || a.hasher == nil {
		return errors.New("msgbroker: the development keys do not exist yet; start the gateway once to create them")
	}
	o.Keys, o.KeyringPath, o.Hasher = a.keys, secrets.keyringPath, a.hasher
	if a.Redis != nil {
		rc, err := a.Redis.resolved()
		if err != nil {
			return err
		}
		o.Redis = redis.NewClient(&redis.Options{Addr: rc.Address, Username: rc.Username, Password: rc.Password, DB: rc.DB, TLSConfig: rc.tlsConfig()})
	}
	st, err := o.openStorage(ctx, storageRaw)
	if err != nil {
		return err
	}
	o.Storage = st
	issuer, err := clientca.New(clientca.Config{CAID: a.CA, Name: name, Storage: st})
	if err != nil {
		return fmt.Errorf("setting up the client certificate issuer: %w", err)
	}
	o.Messages = &broker.Messages{
		Store: o.DB, MaxBodyChars: a.MaxBodyChars,
		Keys:   func() *keyring.Keyring { return o.Keys },
		Hasher: func() *phone.Hasher { return o.Hasher },
	}
	o.Certificates = &broker.Certificates{Store: o.DB, Issuer: issuer, Logger: logger, Announce: o.announce}
	return nil
}

// announce tells running gateways at once through Redis; without Redis they
// see the change at their next poll (revocation_poll_interval).
func (o *Offline) announce(ctx context.Context, serial string) {
	if err := certregistry.Publish(ctx, o.redisClient(), serial); err != nil {
		o.App.logger.Warn("announcing the change through redis failed; gateways will see it when they poll", zap.Error(err))
	}
}

// redisClient returns Redis as the interface certregistry takes: a nil
// *redis.Client must become a nil interface, not a non-nil one holding nil.
func (o *Offline) redisClient() redis.UniversalClient {
	if o.Redis == nil {
		return nil
	}
	return o.Redis
}

// openStorage loads the config's storage module (Caddy's default file
// storage when the config names none).
func (o *Offline) openStorage(ctx context.Context, raw json.RawMessage) (certmagic.Storage, error) {
	if len(raw) == 0 {
		return caddy.DefaultStorage, nil
	}
	// LoadModule, unlike LoadModuleByID, strips the inline "module" key
	// before decoding, as Caddy does for the top-level storage.
	holder := struct {
		StorageRaw json.RawMessage `json:"storage,omitempty" caddy:"namespace=caddy.storage inline_key=module"`
	}{StorageRaw: raw}
	cctx, cancel := caddy.NewContext(caddy.Context{Context: ctx})
	o.cancel = cancel
	mod, err := cctx.LoadModule(&holder, "StorageRaw")
	if err != nil {
		return nil, fmt.Errorf("loading the storage module: %w", err)
	}
	conv, ok := mod.(caddy.StorageConverter)
	if !ok {
		return nil, fmt.Errorf("storage module %T is not a storage", mod)
	}
	return conv.CertMagicStorage()
}

// Close releases the database, Redis and storage.
func (o *Offline) Close() error {
	var errs []error
	if o.DB != nil {
		errs = append(errs, o.DB.DB.Close())
	}
	if o.Redis != nil {
		errs = append(errs, o.Redis.Close())
	}
	if o.cancel != nil {
		o.cancel()
	}
	return errors.Join(errs...)
}
