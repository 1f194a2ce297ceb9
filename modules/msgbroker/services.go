package msgbroker

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/internal/certregistry"
	"github.com/msgbroker/caddy-msgbroker/internal/clientca"
	"github.com/msgbroker/caddy-msgbroker/internal/keyring"
	"github.com/msgbroker/caddy-msgbroker/internal/phone"
	"github.com/msgbroker/caddy-msgbroker/internal/tokens"
	"github.com/msgbroker/caddy-msgbroker/storage"
)

// Services is what the broker's handlers and CLI commands work with. One
// function, buildServices, assembles it for the running gateway (App.Services)
// and for the CLI (OpenServices), so both apply the same rules. It does not
// change once built: a new capability adds a field here, not a lock and an
// accessor on the app. The keyring is the one exception — the gateway
// reloads it when its file changes — so it is read through Keyring.
type Services struct {
	// Store holds the repositories over the database.
	Store *storage.Store
	// Database names the database, without its password, for telling the
	// operator which one a command works on.
	Database string
	// AutoMigrate is the config's auto_migrate setting (its default
	// applied): whether pending migrations are applied without asking.
	AutoMigrate bool
	// Redis is nil when the config has no Redis.
	Redis redis.UniversalClient
	// Registry is the in-memory registry of issued client certificates.
	// The gateway keeps it fresh; the CLI only uses it to announce changes.
	Registry     *certregistry.Registry
	Messages     *broker.Messages
	Certificates *broker.Certificates
	Users        *broker.Users
	// Audit lists and exports the audit log (GET /admin/audit).
	Audit *broker.AuditLog
	// Tokens issues and checks portal and admin JWTs; Portal logs people
	// in and shows them messages. Both are nil when opened without keys.
	Tokens *tokens.Manager
	Portal *broker.Portal
	// Hasher hashes phone numbers; nil when opened without keys.
	Hasher *phone.Hasher
	// JWTKey signs portal tokens; nil when opened without keys.
	JWTKey []byte
	// KeyringPath is the keyring file.
	KeyringPath string
	// CertStorage is Caddy's storage, where the pki app keeps its CA keys
	// and the issuer its client-issuing intermediate.
	CertStorage certmagic.Storage
	Logger      *zap.Logger

	keyring *atomic.Pointer[keyring.Keyring]
	// close releases what OpenServices opened; nil for the gateway, whose
	// connections belong to the usage pool.
	close func() error
}

// Keyring returns the keyring that encrypts message bodies now (nil when
// the services were opened without keys).
func (s *Services) Keyring() *keyring.Keyring {
	if s.keyring == nil {
		return nil
	}
	return s.keyring.Load()
}

// Keys is the key-management service over the keyring loaded now, or nil
// when none is.
func (s *Services) Keys() *broker.Keys {
	kr := s.Keyring()
	if kr == nil {
		return nil
	}
	return &broker.Keys{Store: s.Store, Keyring: kr, Path: s.KeyringPath, Logger: s.Logger}
}

// Close releases the connections OpenServices opened. The gateway's
// services are released by the app, so Close does nothing for them.
func (s *Services) Close() error {
	if s.close == nil {
		return nil
	}
	return s.close()
}

// serviceParts is what the gateway and the CLI open, each in its own way
// (pooled across reloads, or directly), before the services are built.
type serviceParts struct {
	store       *storage.Store
	redis       redis.UniversalClient
	keyring     *atomic.Pointer[keyring.Keyring]
	keyringPath string
	hasher      *phone.Hasher
	jwtKey      []byte
	tokens      *TokensConfig
	login       *LoginConfig
	// portalMetrics count logins (empty in the CLI).
	portalMetrics broker.PortalMetrics
	certStorage   certmagic.Storage
	// caID and caName identify the pki CA whose intermediate issues client
	// certificates; caName is empty when the config does not name it.
	caID, caName string
	maxBodyChars int
	logger       *zap.Logger
	// inserter batches registrations on the gateway; nil inserts directly.
	inserter interface {
		Insert(ctx context.Context, m *storage.Message) error
	}
	// issued and revoked count certificates changed in this process (may
	// be nil).
	issued, revoked prometheus.Counter
}

// buildServices assembles the domain services over opened parts. It opens
// nothing itself, so the gateway and the CLI differ only in how they open.
func buildServices(p serviceParts) (*Services, error) {
	issuer, err := clientca.New(clientca.Config{CAID: p.caID, Name: p.caName, Storage: p.certStorage})
	if err != nil {
		return nil, fmt.Errorf("msgbroker: setting up the client certificate issuer: %w", err)
	}
	registry := certregistry.NewRegistry(p.store.Clients, p.logger.Named("clients"))
	s := &Services{
		Store:       p.store,
		Redis:       p.redis,
		Registry:    registry,
		Users:       newUsers(p.store, p.login, p.logger),
		Hasher:      p.hasher,
		JWTKey:      p.jwtKey,
		KeyringPath: p.keyringPath,
		CertStorage: p.certStorage,
		Logger:      p.logger,
		keyring:     p.keyring,
	}
	s.Messages = &broker.Messages{
		Store:        p.store,
		Inserter:     p.inserter,
		Keys:         s.Keyring,
		Hasher:       func() *phone.Hasher { return s.Hasher },
		MaxBodyChars: p.maxBodyChars,
	}
	s.Certificates = &broker.Certificates{
		Store:    p.store,
		Issuer:   issuer,
		Logger:   p.logger,
		Issued:   p.issued,
		Revoked:  p.revoked,
		Announce: s.announce,
		// The label in each cursor's MAC keeps the lists apart, so the
		// portal's key serves both.
		CursorKey: cursorKey(p.jwtKey),
	}
	s.Audit = &broker.AuditLog{Store: p.store, CursorKey: s.Certificates.CursorKey}
	if s.Tokens, err = p.tokens.manager(p.jwtKey); err != nil {
		return nil, fmt.Errorf("msgbroker: %w", err)
	}
	if s.Tokens != nil {
		s.Portal = newPortal(s, p, s.Certificates.CursorKey)
	}
	return s, nil
}

// newUsers is the user service, hashing at the configured bcrypt cost;
// the CLI's database-only services use it too, so a user created there is
// hashed as one created through the admin API.
func newUsers(store *storage.Store, login *LoginConfig, logger *zap.Logger) *broker.Users {
	return &broker.Users{Store: store, BcryptCost: login.bcryptCost(), Logger: logger}
}

// newPortal builds the portal service over the users and keyring of s.
func newPortal(s *Services, p serviceParts, cursors []byte) *broker.Portal {
	l := p.login
	if l == nil {
		l = new(LoginConfig)
	}
	return &broker.Portal{
		Store:     s.Store,
		Tokens:    s.Tokens,
		Users:     s.Users,
		Pool:      broker.NewHashPool(broker.HashLimits{Workers: l.HashWorkers, PerSecond: l.HashesPerSecond, Burst: l.HashBurst}),
		Keys:      s.Keyring,
		CursorKey: cursors,
		Limits: broker.LoginLimits{MaxFailures: l.MaxFailures, AddressMaxFailures: l.AddressMaxFailures,
			Lockout: time.Duration(l.Lockout), FailureDelay: time.Duration(l.FailureDelay)},
		Metrics: p.portalMetrics,
		Logger:  p.logger.Named("portal"),
	}
}

// cursorKey derives the key that authenticates pagination cursors from
// the JWT secret, so every node of a cluster accepts the others' cursors.
// Without a secret (EdDSA tokens) a random key serves this process only:
// a cursor then fails on another node or after a restart, and the client
// starts its list again.
func cursorKey(jwtKey []byte) []byte {
	if len(jwtKey) == 0 {
		k := make([]byte, 32)
		_, _ = rand.Read(k)
		return k
	}
	mac := hmac.New(sha256.New, jwtKey)
	mac.Write([]byte("msgbroker portal cursor key"))
	return mac.Sum(nil)
}

// announce refreshes this process's registry at once and tells the other
// nodes through Redis; without Redis they see the change at their next poll
// (revocation_poll_interval).
func (s *Services) announce(ctx context.Context, serial string) {
	if err := s.Registry.Announce(ctx, serial, s.Redis); err != nil {
		s.Logger.Warn("announcing a certificate change failed; other nodes will see it when they poll",
			zap.String("serial", serial), zap.Error(err))
	}
}

// errNoKeys is returned to commands that need keys the gateway has not
// generated yet.
var errNoKeys = errors.New("msgbroker: the development keys do not exist yet; start the gateway once to create them")
