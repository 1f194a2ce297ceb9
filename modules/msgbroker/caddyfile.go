package msgbroker

import (
	"strconv"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/msgbroker/caddy-msgbroker/internal/caddyfileutil"
)

func init() {
	httpcaddyfile.RegisterGlobalOption(AppName, parseGlobalOption)
}

// maxRequestBytes bounds max_request_bytes: a larger body is a mistake,
// not a message.
const maxRequestBytes = 1 << 30

// parseGlobalOption turns the `msgbroker { … }` global option into the app's
// JSON. A second `msgbroker` global option is an error: Caddy would
// otherwise keep the last one silently.
func parseGlobalOption(d *caddyfile.Dispenser, existing any) (any, error) {
	if existing != nil {
		d.Next()
		return nil, d.Errf("duplicate global option '%s'", d.Val())
	}
	app := new(App)
	if err := app.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{
		Name:  AppName,
		Value: caddyconfig.JSON(app, nil),
	}, nil
}

// UnmarshalCaddyfile sets up the app from the `msgbroker` global option:
//
//	msgbroker {
//		database <sqlite|mysql> <dsn> {
//			max_open_conns    <n>
//			max_idle_conns    <n>
//			conn_max_lifetime <duration>
//			auto_migrate      <on|off>
//		}
//		redis <host:port> {
//			username <user>
//			password <password>
//			db       <n>
//			tls
//		}
//		encryption_key_file <path>
//		hash_key   <secret>
//		jwt_secret <secret>
//		tokens {
//			algorithm        <HS256|EdDSA>
//			signing_key_file <ed25519 pem>
//			verify_key_files <pem...>
//			previous_secrets <secret...>
//			access_ttl       <duration>
//			refresh_ttl      <duration>
//			issuer           <iss>
//			audience         <aud>
//		}
//		login {
//			bcrypt_cost          <4-31>
//			hash_workers         <n>
//			hashes_per_second    <n|-1>
//			hash_burst           <n>
//			max_failures         <n|-1>
//			address_max_failures <n|-1>
//			lockout              <duration>
//			failure_delay        <duration up to 30s|off>
//		}
//		ca         <pki ca id>
//		revocation_poll_interval <duration>
//		max_request_bytes <size>
//		max_body_chars    <n>
//		dev_keys   <dir>
//	}
//
// Every option and every block is optional, and each may appear once.
// Numbers are non-negative integers, durations are Caddy's (1s, 30m, 1d),
// sizes may carry a unit (64KiB, 1MB; at most 1 GiB) and the redis address
// needs a port unless it is a placeholder.
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume option name
	if d.NextArg() {
		return d.ArgErr()
	}
	return caddyfileutil.ParseBlock(d, "msgbroker", caddyfileutil.Options{
		"database": func(d *caddyfile.Dispenser) (err error) {
			a.Database, err = ParseDatabase(d)
			return err
		},
		"redis": func(d *caddyfile.Dispenser) (err error) {
			a.Redis, err = parseRedis(d)
			return err
		},
		"encryption_key_file": caddyfileutil.String(&a.EncryptionKeyFile),
		"hash_key":            caddyfileutil.String(&a.HashKey),
		"jwt_secret":          caddyfileutil.String(&a.JWTSecret),
		"tokens": func(d *caddyfile.Dispenser) (err error) {
			a.Tokens, err = parseTokens(d)
			return err
		},
		"login": func(d *caddyfile.Dispenser) (err error) {
			a.Login, err = parseLogin(d)
			return err
		},
		"ca":                       caddyfileutil.String(&a.CA),
		"dev_keys":                 caddyfileutil.String(&a.DevKeysDir),
		"revocation_poll_interval": caddyfileutil.Duration(&a.RevocationPollInterval),
		"max_request_bytes":        caddyfileutil.Size(&a.MaxRequestBytes, maxRequestBytes),
		"max_body_chars":           caddyfileutil.Int(&a.MaxBodyChars),
	})
}

// ParseDatabase parses `database <sqlite|mysql> <dsn> [{ … }]`, the app's
// option, which the storage module takes too.
func ParseDatabase(d *caddyfile.Dispenser) (*DatabaseConfig, error) {
	db := new(DatabaseConfig)
	if !d.Args(&db.Driver, &db.DSN) || d.NextArg() {
		return nil, d.ArgErr()
	}
	if db.Driver != "sqlite" && db.Driver != "mysql" {
		return nil, d.Errf("database driver must be sqlite or mysql, got '%s'", db.Driver)
	}
	err := caddyfileutil.ParseBlock(d, "database", caddyfileutil.Options{
		"max_open_conns":    caddyfileutil.Int(&db.MaxOpenConns),
		"max_idle_conns":    caddyfileutil.Int(&db.MaxIdleConns),
		"conn_max_lifetime": caddyfileutil.Duration(&db.ConnMaxLifetime),
		"auto_migrate":      caddyfileutil.OnOff(&db.AutoMigrate),
	})
	return db, err
}

// parseRedis parses `redis <host:port> [{ … }]`.
func parseRedis(d *caddyfile.Dispenser) (*RedisConfig, error) {
	r := new(RedisConfig)
	if !d.Args(&r.Address) || d.NextArg() {
		return nil, d.ArgErr()
	}
	if err := caddyfileutil.CheckHostPort(d, "redis", r.Address); err != nil {
		return nil, err
	}
	err := caddyfileutil.ParseBlock(d, "redis", caddyfileutil.Options{
		"username": caddyfileutil.String(&r.Username),
		"password": caddyfileutil.String(&r.Password),
		"db":       caddyfileutil.Int(&r.DB),
		"tls":      caddyfileutil.Flag(&r.TLS),
	})
	return r, err
}

// parseTokens parses `tokens { … }`.
func parseTokens(d *caddyfile.Dispenser) (*TokensConfig, error) {
	t := new(TokensConfig)
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	err := caddyfileutil.ParseBlock(d, "tokens", caddyfileutil.Options{
		"algorithm": func(d *caddyfile.Dispenser) error {
			if err := caddyfileutil.String(&t.Algorithm)(d); err != nil {
				return err
			}
			if t.Algorithm != "HS256" && t.Algorithm != "EdDSA" {
				return d.Errf("algorithm: expected HS256 or EdDSA, got '%s'", t.Algorithm)
			}
			return nil
		},
		"signing_key_file": caddyfileutil.String(&t.SigningKeyFile),
		"verify_key_files": stringList(&t.VerifyKeyFiles),
		"previous_secrets": stringList(&t.PreviousSecrets),
		"access_ttl":       caddyfileutil.Duration(&t.AccessTTL),
		"refresh_ttl":      caddyfileutil.Duration(&t.RefreshTTL),
		"issuer":           caddyfileutil.String(&t.Issuer),
		"audience":         caddyfileutil.String(&t.Audience),
	})
	return t, err
}

// parseLogin parses `login { … }`.
func parseLogin(d *caddyfile.Dispenser) (*LoginConfig, error) {
	l := new(LoginConfig)
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	err := caddyfileutil.ParseBlock(d, "login", caddyfileutil.Options{
		"bcrypt_cost":          caddyfileutil.Int(&l.BcryptCost),
		"hash_workers":         caddyfileutil.Int(&l.HashWorkers),
		"hashes_per_second":    limit(&l.HashesPerSecond),
		"hash_burst":           caddyfileutil.Int(&l.HashBurst),
		"max_failures":         limit(&l.MaxFailures),
		"address_max_failures": limit(&l.AddressMaxFailures),
		"lockout":              caddyfileutil.Duration(&l.Lockout),
		"failure_delay":        caddyfileutil.DurationOrOff(&l.FailureDelay, maxFailureDelay),
	})
	return l, err
}

// stringList is an option with one or more arguments.
func stringList(dst *[]string) caddyfileutil.Option {
	return func(d *caddyfile.Dispenser) error {
		option := d.Val()
		*dst = d.RemainingArgs()
		if len(*dst) == 0 {
			return d.ArgErr()
		}
		if d.NextBlock(d.Nesting()) {
			return d.Errf("%s takes no block, got '%s'", option, d.Val())
		}
		return nil
	}
}

// limit is a count that -1 turns off.
func limit(dst *int) caddyfileutil.Option {
	return func(d *caddyfile.Dispenser) error {
		option := d.Val()
		var v string
		if !d.Args(&v) || d.NextArg() {
			return d.ArgErr()
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < -1 {
			return d.Errf("%s: expected a count or -1, got '%s'", option, v)
		}
		*dst = n
		if d.NextBlock(d.Nesting()) {
			return d.Errf("%s takes no block, got '%s'", option, d.Val())
		}
		return nil
	}
}

// Interface guard
var _ caddyfile.Unmarshaler = (*App)(nil)
