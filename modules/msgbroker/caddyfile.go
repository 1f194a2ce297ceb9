package msgbroker

import (
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/dustin/go-humanize"
)

func init() {
	httpcaddyfile.RegisterGlobalOption(AppName, parseGlobalOption)
}

// parseGlobalOption turns the `msgbroker { … }` global option into the app's
// JSON. The syntax is documented on the package.
func parseGlobalOption(d *caddyfile.Dispenser, _ any) (any, error) {
	app := new(App)
	if err := app.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{
		Name:  AppName,
		Value: caddyconfig.JSON(app, nil),
	}, nil
}

// UnmarshalCaddyfile sets up the app from Caddyfile tokens.
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume option name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "database":
			a.Database, err = parseDatabase(d)
		case "redis":
			a.Redis, err = parseRedis(d)
		case "encryption_key_file":
			a.EncryptionKeyFile, err = singleArg(d)
		case "hash_key":
			a.HashKey, err = singleArg(d)
		case "jwt_secret":
			a.JWTSecret, err = singleArg(d)
		case "ca":
			a.CA, err = singleArg(d)
		case "dev_keys":
			a.DevKeysDir, err = singleArg(d)
		case "revocation_poll_interval":
			var dur time.Duration
			dur, err = durationArg(d)
			a.RevocationPollInterval = caddy.Duration(dur)
		case "max_request_bytes":
			a.MaxRequestBytes, err = sizeArg(d)
		case "max_body_chars":
			a.MaxBodyChars, err = intArg(d)
		default:
			return d.Errf("unrecognized msgbroker option '%s'", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// parseDatabase parses `database <driver> <dsn> [{ … }]`.
func parseDatabase(d *caddyfile.Dispenser) (*DatabaseConfig, error) {
	db := new(DatabaseConfig)
	if !d.Args(&db.Driver, &db.DSN) {
		return nil, d.ArgErr()
	}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	if db.Driver != "sqlite" && db.Driver != "mysql" {
		return nil, d.Errf("database driver must be sqlite or mysql, got '%s'", db.Driver)
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "max_open_conns":
			db.MaxOpenConns, err = intArg(d)
		case "max_idle_conns":
			db.MaxIdleConns, err = intArg(d)
		case "conn_max_lifetime":
			var dur time.Duration
			dur, err = durationArg(d)
			db.ConnMaxLifetime = caddy.Duration(dur)
		case "auto_migrate":
			var on bool
			on, err = onOffArg(d)
			db.AutoMigrate = &on
		default:
			return nil, d.Errf("unrecognized database option '%s'", d.Val())
		}
		if err != nil {
			return nil, err
		}
	}
	return db, nil
}

// parseRedis parses `redis <address> [{ … }]`.
func parseRedis(d *caddyfile.Dispenser) (*RedisConfig, error) {
	r := new(RedisConfig)
	if !d.Args(&r.Address) {
		return nil, d.ArgErr()
	}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "username":
			r.Username, err = singleArg(d)
		case "password":
			r.Password, err = singleArg(d)
		case "db":
			r.DB, err = intArg(d)
		case "tls":
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			r.TLS = true
		default:
			return nil, d.Errf("unrecognized redis option '%s'", d.Val())
		}
		if err != nil {
			return nil, err
		}
	}
	return r, nil
}

func singleArg(d *caddyfile.Dispenser) (string, error) {
	var v string
	if !d.Args(&v) || d.NextArg() {
		return "", d.ArgErr()
	}
	return v, nil
}

func intArg(d *caddyfile.Dispenser) (int, error) {
	v, err := singleArg(d)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, d.Errf("%s: expected a non-negative integer, got '%s'", d.Val(), v)
	}
	return n, nil
}

// sizeArg parses a byte size such as 65536, 64KiB or 1MB.
func sizeArg(d *caddyfile.Dispenser) (int64, error) {
	v, err := singleArg(d)
	if err != nil {
		return 0, err
	}
	n, err := humanize.ParseBytes(v)
	if err != nil || n == 0 || n > 1<<30 {
		return 0, d.Errf("%s: expected a size between 1B and 1GiB, got '%s'", d.Val(), v)
	}
	return int64(n), nil
}

func durationArg(d *caddyfile.Dispenser) (time.Duration, error) {
	v, err := singleArg(d)
	if err != nil {
		return 0, err
	}
	dur, err := caddy.ParseDuration(v)
	if err != nil {
		return 0, d.Errf("invalid duration '%s': %v", v, err)
	}
	return dur, nil
}

func onOffArg(d *caddyfile.Dispenser) (bool, error) {
	v, err := singleArg(d)
	if err != nil {
		return false, err
	}
	switch v {
	case "on", "true":
		return true, nil
	case "off", "false":
		return false, nil
	}
	return false, d.Errf("expected on or off, got '%s'", v)
}

// Interface guard
var _ caddyfile.Unmarshaler = (*App)(nil)
