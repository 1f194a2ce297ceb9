package msgbroker

import (
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
			a.Database, err = parseDatabase(d)
			return err
		},
		"redis": func(d *caddyfile.Dispenser) (err error) {
			a.Redis, err = parseRedis(d)
			return err
		},
		"encryption_key_file":      caddyfileutil.String(&a.EncryptionKeyFile),
		"hash_key":                 caddyfileutil.String(&a.HashKey),
		"jwt_secret":               caddyfileutil.String(&a.JWTSecret),
		"ca":                       caddyfileutil.String(&a.CA),
		"dev_keys":                 caddyfileutil.String(&a.DevKeysDir),
		"revocation_poll_interval": caddyfileutil.Duration(&a.RevocationPollInterval),
		"max_request_bytes":        caddyfileutil.Size(&a.MaxRequestBytes, maxRequestBytes),
		"max_body_chars":           caddyfileutil.Int(&a.MaxBodyChars),
	})
}

// parseDatabase parses `database <sqlite|mysql> <dsn> [{ … }]`.
func parseDatabase(d *caddyfile.Dispenser) (*DatabaseConfig, error) {
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

// Interface guard
var _ caddyfile.Unmarshaler = (*App)(nil)
