package msgbroker

import (
	"crypto/tls"
	"fmt"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/bcrypt"

	"github.com/msgbroker/caddy-msgbroker/internal/tokens"
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

// TokensConfig configures the portal's and admin API's JWTs. Without it,
// tokens are HS256 over jwt_secret with the default lifetimes.
type TokensConfig struct {
	// HS256 (default; signed with jwt_secret) or EdDSA (signed with the
	// Ed25519 key in signing_key_file).
	Algorithm string `json:"algorithm,omitempty"`

	// EdDSA: a PEM file with the Ed25519 private key that signs
	// (`openssl genpkey -algorithm ed25519`).
	SigningKeyFile string `json:"signing_key_file,omitempty"`

	// EdDSA: PEM files of retired keys (public or private) whose tokens
	// stay valid until they expire, so rotating the signing key logs
	// nobody out.
	VerifyKeyFiles []string `json:"verify_key_files,omitempty"`

	// HS256: retired JWT secrets whose tokens stay valid until they
	// expire. Use placeholders such as {env.MSGBROKER_OLD_JWT_SECRET}.
	PreviousSecrets []string `json:"previous_secrets,omitempty"`

	// Lifetimes of access tokens (default 24h) and refresh tokens
	// (default 30d).
	AccessTTL  caddy.Duration `json:"access_ttl,omitempty"`
	RefreshTTL caddy.Duration `json:"refresh_ttl,omitempty"`

	// The iss and aud claims (defaults "msgbroker", "msgbroker-portal").
	Issuer   string `json:"issuer,omitempty"`
	Audience string `json:"audience,omitempty"`
}

// manager builds the token manager; jwtKey is the resolved jwt_secret.
func (t *TokensConfig) manager(jwtKey []byte) (*tokens.Manager, error) {
	cfg := tokens.Config{}
	if t == nil {
		t = new(TokensConfig)
	}
	cfg.Issuer, cfg.Audience = t.Issuer, t.Audience
	cfg.AccessTTL, cfg.RefreshTTL = time.Duration(t.AccessTTL), time.Duration(t.RefreshTTL)
	switch t.Algorithm {
	case "", tokens.HS256:
		if len(jwtKey) == 0 {
			return nil, nil
		}
		cfg.Signing = tokens.HMACKey(jwtKey)
		repl := caddy.NewReplacer()
		for i, raw := range t.PreviousSecrets {
			secret, err := repl.ReplaceOrErr(raw, false, true)
			if err != nil || len(secret) < minJWTSecretLen {
				return nil, fmt.Errorf("tokens: previous secret %d must resolve to at least %d bytes", i+1, minJWTSecretLen)
			}
			cfg.Previous = append(cfg.Previous, tokens.HMACKey([]byte(secret)))
		}
	case tokens.EdDSA:
		k, err := tokens.LoadEd25519File(t.SigningKeyFile)
		if err != nil {
			return nil, err
		}
		cfg.Signing = k
		for _, f := range t.VerifyKeyFiles {
			k, err := tokens.LoadEd25519File(f)
			if err != nil {
				return nil, err
			}
			cfg.Previous = append(cfg.Previous, k)
		}
	}
	return tokens.New(cfg)
}

func (t *TokensConfig) validate() error {
	switch t.Algorithm {
	case "", tokens.HS256:
		if t.SigningKeyFile != "" || len(t.VerifyKeyFiles) > 0 {
			return fmt.Errorf("tokens: key files are for algorithm EdDSA; HS256 signs with jwt_secret")
		}
	case tokens.EdDSA:
		if t.SigningKeyFile == "" {
			return fmt.Errorf("tokens: algorithm EdDSA needs signing_key_file")
		}
		if len(t.PreviousSecrets) > 0 {
			return fmt.Errorf("tokens: previous_secrets are for algorithm HS256")
		}
	default:
		return fmt.Errorf("tokens: algorithm must be HS256 or EdDSA, got %q", t.Algorithm)
	}
	if t.AccessTTL < 0 || t.RefreshTTL < 0 {
		return fmt.Errorf("tokens: lifetimes must not be negative")
	}
	if t.RefreshTTL > 0 && t.AccessTTL > 0 && t.RefreshTTL < t.AccessTTL {
		return fmt.Errorf("tokens: refresh_ttl must not be shorter than access_ttl")
	}
	return nil
}

// LoginConfig configures password hashing and the login lockouts.
type LoginConfig struct {
	// bcrypt work factor for new hashes (default 12, 4..31). Hashes of
	// another cost still verify and are rehashed at this one on login.
	BcryptCost int `json:"bcrypt_cost,omitempty"`

	// How many bcrypt computations run at once (default: half the CPUs,
	// at least 1), so a login flood cannot take every core.
	HashWorkers int `json:"hash_workers,omitempty"`

	// How many logins a second may start a bcrypt (default: one per CPU;
	// -1: no budget) and how many at once after a quiet spell (default
	// 10). Beyond it logins answer 429 login_busy with Retry-After: the
	// budget, not the workers, bounds the CPU a login flood can take.
	HashesPerSecond int `json:"hashes_per_second,omitempty"`
	HashBurst       int `json:"hash_burst,omitempty"`

	// Wrong passwords in a row that lock an account (default 5), and
	// failed logins from one address that lock the address (default 20);
	// -1 disables either.
	MaxFailures        int `json:"max_failures,omitempty"`
	AddressMaxFailures int `json:"address_max_failures,omitempty"`

	// How long a lockout lasts (default 15m).
	Lockout caddy.Duration `json:"lockout,omitempty"`

	// The least time a login that does not succeed takes to answer
	// (default 1s, at most 30s; negative: answer at once). A flood whose
	// clients wait for their answers is slowed to one attempt per delay
	// and client.
	FailureDelay caddy.Duration `json:"failure_delay,omitempty"`
}

func (l *LoginConfig) validate() error {
	if l.BcryptCost != 0 && (l.BcryptCost < bcrypt.MinCost || l.BcryptCost > bcrypt.MaxCost) {
		return fmt.Errorf("login: bcrypt_cost must be between %d and %d", bcrypt.MinCost, bcrypt.MaxCost)
	}
	if l.HashWorkers < 0 || l.HashesPerSecond < -1 || l.HashBurst < 0 || l.MaxFailures < -1 || l.AddressMaxFailures < -1 || l.Lockout < 0 {
		return fmt.Errorf("login: limits must not be negative")
	}
	if time.Duration(l.FailureDelay) > maxFailureDelay {
		return fmt.Errorf("login: failure_delay must be at most %s", maxFailureDelay)
	}
	return nil
}

// maxFailureDelay bounds failure_delay below the timeouts of common HTTP
// clients (curl has none, browsers wait minutes, Go's is the caller's).
const maxFailureDelay = 30 * time.Second

func (l *LoginConfig) bcryptCost() int {
	if l == nil {
		return 0
	}
	return l.BcryptCost
}
