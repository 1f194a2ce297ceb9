package msgbroker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/msgbroker/caddy-msgbroker/internal/keyring"
	"github.com/msgbroker/caddy-msgbroker/storage"
)

// OpenOptions tune OpenServices.
type OpenOptions struct {
	// DatabaseOnly opens only the database (for the migrate commands, which
	// must work before any key exists). Every other field of the Services
	// but Store and Logger is then empty.
	DatabaseOnly bool
	// Logger receives the services' warnings (default: a no-op logger).
	Logger *zap.Logger
	// BaseDir, when set, is the directory relative paths in the config
	// are taken from (the SQLite file, the keyring and development keys,
	// the file_system storage root) instead of the working directory.
	BaseDir string
}

// OpenServices builds the services of the msgbroker app in cfgJSON (a whole
// Caddy config) outside a running Caddy, for the admin CLI. It reads the
// same JSON the gateway runs (adapted from the same Caddyfile), resolves
// the same placeholders and builds the services with the same function, so
// the CLI has no second implementation of any rule. Caddy cannot provision
// an app without running it, hence this path. Close releases what it opened.
func OpenServices(ctx context.Context, cfgJSON []byte, opts OpenOptions) (*Services, error) {
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
	a := &App{keys: newKeyringSlot()}
	if err := json.Unmarshal(raw, a); err != nil {
		return nil, fmt.Errorf("reading the msgbroker app config: %w", err)
	}
	a.logger = opts.Logger
	if a.logger == nil {
		a.logger = zap.NewNop()
	}
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
	db, err := storage.Open(ctx, scfg)
	if err != nil {
		return nil, fmt.Errorf("opening %s database: %w", describeDatabase(scfg), err)
	}
	o := &opened{store: storage.New(db)}
	s := &Services{Store: o.store, Users: newUsers(o.store, a.Login, a.logger), Logger: a.logger}
	if !opts.DatabaseOnly {
		if s, err = o.services(ctx, a, storageInDir(opts.BaseDir, cfg.StorageRaw), caName(cfg.Apps["pki"], a.CA), opts.BaseDir); err != nil {
			_ = o.close()
			return nil, err
		}
	}
	s.Database = describeDatabase(scfg)
	s.AutoMigrate = a.Database.autoMigrate()
	s.close = o.close
	return s, nil
}

// opened is what OpenServices opened and Close releases.
type opened struct {
	store  *storage.Store
	redis  *redis.Client
	cancel context.CancelFunc
}

// services resolves the app's secrets, opens Redis and Caddy's storage and
// builds the services. Development secrets are read, never generated, by
// the CLI: the gateway's first start creates them.
func (o *opened) services(ctx context.Context, a *App, storageRaw json.RawMessage, caName, baseDir string) (*Services, error) {
	secrets, err := resolveSecrets(a)
	if err != nil {
		return nil, err
	}
	secrets.in(baseDir)
	a.secrets = secrets
	if err := a.loadExistingKeys(); err != nil {
		return nil, err
	}
	if a.keys.Load() == nil || a.hasher == nil {
		return nil, errNoKeys
	}
	parts := serviceParts{
		store:        o.store,
		keyring:      a.keys,
		keyringPath:  secrets.keyringPath,
		hasher:       a.hasher,
		jwtKey:       a.jwtKey,
		tokens:       a.Tokens,
		login:        a.Login,
		caID:         a.CA,
		caName:       caName,
		maxBodyChars: a.MaxBodyChars,
		logger:       a.logger,
	}
	if a.Redis != nil {
		rc, err := a.Redis.resolved()
		if err != nil {
			return nil, err
		}
		o.redis = redis.NewClient(rc.options())
		parts.redis = o.redis
	}
	if parts.certStorage, err = o.openCertStorage(ctx, storageRaw); err != nil {
		return nil, err
	}
	return buildServices(parts)
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

// openCertStorage loads the config's storage module (Caddy's default file
// storage when the config names none).
func (o *opened) openCertStorage(ctx context.Context, raw json.RawMessage) (certmagic.Storage, error) {
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

// close releases the database, Redis and storage.
func (o *opened) close() error {
	var errs []error
	if o.store != nil {
		errs = append(errs, o.store.DB.Close())
	}
	if o.redis != nil {
		errs = append(errs, o.redis.Close())
	}
	if o.cancel != nil {
		o.cancel()
	}
	return errors.Join(errs...)
}

// newKeyringSlot returns an empty slot for the keyring that encrypts now.
func newKeyringSlot() *atomic.Pointer[keyring.Keyring] { return new(atomic.Pointer[keyring.Keyring]) }
