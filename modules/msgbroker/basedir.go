package msgbroker

import (
	"encoding/json"
	"path/filepath"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/msgbroker/caddy-msgbroker/storage"
)

// The admin CLI opens the services of a config it may have been given by
// an absolute path from anywhere; its relative paths then mean the config
// file's directory (where `caddy run` is started in the README), not the
// working directory, or a typo'd cwd opens a new, empty database.

// inDir returns path taken relative to dir; absolute paths, empty ones
// and an empty dir leave it as it is.
func inDir(dir, path string) string {
	if dir == "" || path == "" || filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(dir, path)
}

// sqliteDSNInDir moves a SQLite DSN that is a plain relative path under
// dir, keeping its query; "file:" URIs and in-memory databases stay as
// written.
func sqliteDSNInDir(dir, dsn string) string {
	path, query, hasQuery := strings.Cut(dsn, "?")
	if strings.HasPrefix(path, "file:") || path == ":memory:" {
		return dsn
	}
	path = inDir(dir, path)
	if hasQuery {
		return path + "?" + query
	}
	return path
}

// in moves the secret files under dir.
func (s *resolvedSecrets) in(dir string) {
	s.keyringPath = inDir(dir, s.keyringPath)
	s.devHashKeyPath = inDir(dir, s.devHashKeyPath)
	s.devJWTSecretPath = inDir(dir, s.devJWTSecretPath)
}

// storageInDir moves the paths of Caddy's storage under dir, so that the
// CLI finds the CA where the gateway keeps it: the root of file_system
// storage, and the SQLite file and keyring file of msgbroker_sql storage. Other storage
// modules are left as configured.
func storageInDir(dir string, raw json.RawMessage) json.RawMessage {
	var fields map[string]any
	if dir == "" || json.Unmarshal(raw, &fields) != nil {
		return raw
	}
	switch fields["module"] {
	case "file_system":
		root, ok := fields["root"].(string)
		if !ok {
			return raw
		}
		fields["root"] = resolvedIn(dir, root, inDir)
	case "msgbroker_sql":
		if keys, ok := fields["encryption_key_file"].(string); ok {
			fields["encryption_key_file"] = resolvedIn(dir, keys, inDir)
		}
		db, ok := fields["database"].(map[string]any)
		if dsn, isString := db["dsn"].(string); ok && isString && db["driver"] == storage.DriverSQLite {
			db["dsn"] = resolvedIn(dir, dsn, sqliteDSNInDir)
		}
	default:
		return raw
	}
	out, err := json.Marshal(fields)
	if err != nil {
		return raw
	}
	return out
}

// resolvedIn resolves the placeholders of a path from the config, as the
// module would, before move puts it under dir: a placeholder such as
// {env.MSGBROKER_KEYRING} is not a relative path, and its value may be an
// absolute one. A placeholder that does not resolve is left for the
// module to report.
func resolvedIn(dir, value string, move func(dir, path string) string) string {
	resolved, err := caddy.NewReplacer().ReplaceOrErr(value, true, true)
	if err != nil {
		return value
	}
	return move(dir, resolved)
}

// describeDatabase names the database for people: the driver and the DSN
// without its password.
func describeDatabase(cfg storage.Config) string {
	return cfg.Driver + " " + storage.RedactDSN(cfg.Driver, cfg.DSN)
}
