package msgbroker

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/msgbroker/caddy-msgbroker/internal/keyring"
	"github.com/msgbroker/caddy-msgbroker/internal/phone"
)

// Minimum secret sizes. The hash key guards phone numbers against brute
// force; the JWT secret is an HMAC key and must carry at least 256 bits.
const (
	minHashKeyLen   = 16
	minJWTSecretLen = 32
)

// resolvedSecrets holds the secret settings after placeholder resolution.
// The values themselves are never logged or returned in errors.
type resolvedSecrets struct {
	keyringPath string
	hashKey     string
	jwtSecret   string

	// files the development mode reads or creates for missing secrets
	devHashKeyPath   string
	devJWTSecretPath string
}

// resolveSecrets resolves placeholders and reports every missing server
// address and, outside development mode, every missing secret in one error,
// so an operator fixes them all at once.
func resolveSecrets(a *App) (resolvedSecrets, error) {
	repl := caddy.NewReplacer()
	var s resolvedSecrets
	var missing []string
	resolve := func(name, raw string) string {
		v, err := repl.ReplaceOrErr(raw, false, true)
		if err != nil {
			missing = append(missing, fmt.Sprintf("%s (%v)", name, err))
			return ""
		}
		if strings.TrimSpace(v) == "" {
			if raw == "" {
				missing = append(missing, name+" (not set)")
			} else {
				missing = append(missing, fmt.Sprintf("%s (%s resolved to an empty value)", name, raw))
			}
		}
		return v
	}
	// The servers to connect to are checked here too, in development mode
	// as well: an empty DSN found only at start would come after the
	// listeners opened and certificates were requested.
	if a.Database != nil {
		resolve("database", a.Database.DSN)
	}
	if a.Redis != nil {
		resolve("redis", a.Redis.Address)
	}
	servers := len(missing)
	s.keyringPath = resolve("encryption_key_file", a.EncryptionKeyFile)
	s.hashKey = resolve("hash_key", a.HashKey)
	s.jwtSecret = resolve("jwt_secret", a.JWTSecret)

	if a.DevKeysDir != "" {
		if servers > 0 {
			return s, fmt.Errorf("msgbroker: missing settings: %s", strings.Join(missing[:servers], ", "))
		}
		dir := repl.ReplaceKnown(a.DevKeysDir, "")
		if s.keyringPath == "" {
			s.keyringPath = filepath.Join(dir, "keyring.json")
		}
		if s.hashKey == "" {
			s.devHashKeyPath = filepath.Join(dir, "hash_key")
		}
		if s.jwtSecret == "" {
			s.devJWTSecretPath = filepath.Join(dir, "jwt_secret")
		}
		return s, nil
	}
	if len(missing) > 0 {
		return s, fmt.Errorf("msgbroker: missing settings: %s; set them in the msgbroker global option "+
			"(or dev_keys <dir> for development only)", strings.Join(missing, ", "))
	}
	return s, nil
}

// validate checks the secrets that are set; resolveSecrets has already
// refused missing ones outside development mode.
func (s resolvedSecrets) validate() error {
	if s.hashKey != "" && len(s.hashKey) < minHashKeyLen {
		return fmt.Errorf("msgbroker: hash_key must be at least %d bytes", minHashKeyLen)
	}
	if s.jwtSecret != "" && len(s.jwtSecret) < minJWTSecretLen {
		return fmt.Errorf("msgbroker: jwt_secret must be at least %d bytes", minJWTSecretLen)
	}
	return nil
}

// loadExistingKeys loads the secrets that already exist, read-only. Keys
// that development mode will generate are left for Start.
func (a *App) loadExistingKeys() error {
	s := a.secrets
	if err := s.validate(); err != nil {
		return err
	}
	if _, err := os.Stat(s.keyringPath); err == nil {
		kr, err := keyring.Load(s.keyringPath)
		if err != nil {
			return fmt.Errorf("msgbroker: %w", err)
		}
		if err := keyring.CheckPermissions(s.keyringPath); err != nil {
			a.logger.Warn("keyring file permissions are too open", zap.String("path", s.keyringPath), zap.Error(err))
		}
		a.keys.Store(kr)
	} else if a.DevKeysDir == "" {
		return fmt.Errorf("msgbroker: encryption_key_file %s: %w", s.keyringPath, err)
	}

	hashKey, err := readDevSecret(s.hashKey, s.devHashKeyPath)
	if err != nil {
		return err
	}
	if hashKey != "" {
		if a.hasher, err = phone.NewHasher([]byte(hashKey)); err != nil {
			return fmt.Errorf("msgbroker: hash_key: %w", err)
		}
	}
	jwtSecret, err := readDevSecret(s.jwtSecret, s.devJWTSecretPath)
	if err != nil {
		return err
	}
	if jwtSecret != "" {
		a.jwtKey = []byte(jwtSecret)
	}
	return nil
}

// readDevSecret returns the configured value, or the content of the
// development file when it exists, or "" when it is still to be generated.
func readDevSecret(value, devPath string) (string, error) {
	if value != "" || devPath == "" {
		return value, nil
	}
	data, err := os.ReadFile(devPath)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("msgbroker: reading development secret: %w", err)
	}
	return strings.TrimSpace(string(data)), nil
}

// generateDevKeys creates whatever development mode still misses. It runs at
// start, never during `caddy validate`.
func (a *App) generateDevKeys() error {
	if a.DevKeysDir == "" {
		return nil
	}
	a.logger.Warn("dev_keys is set: missing keys are generated on this machine; never use this in production",
		zap.String("dir", a.DevKeysDir))
	s := a.secrets
	if a.keys.Load() == nil {
		kr, created, err := keyring.CreateIfMissing(s.keyringPath)
		if err != nil {
			return fmt.Errorf("msgbroker: creating development keyring: %w", err)
		}
		if created {
			a.logger.Warn("DEVELOPMENT ENCRYPTION KEY GENERATED — message bodies are encrypted with a key created on this machine; "+
				"do not use dev_keys in production", zap.String("path", s.keyringPath))
		}
		a.keys.Store(kr)
	}
	if a.hasher == nil {
		secret, err := createDevSecret(s.devHashKeyPath, a.logger)
		if err != nil {
			return err
		}
		h, err := phone.NewHasher([]byte(secret))
		if err != nil {
			return fmt.Errorf("msgbroker: development hash key: %w", err)
		}
		a.hasher = h
	}
	if a.jwtKey == nil {
		secret, err := createDevSecret(s.devJWTSecretPath, a.logger)
		if err != nil {
			return err
		}
		a.jwtKey = []byte(secret)
	}
	return nil
}

// createDevSecret returns the secret in path, creating it (32 random bytes,
// base64, mode 0600) when absent. O_EXCL keeps two starting nodes from
// overwriting each other's secret.
func createDevSecret(path string, logger *zap.Logger) (string, error) {
	if existing, err := readDevSecret("", path); err != nil || existing != "" {
		return existing, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("msgbroker: creating %s: %w", filepath.Dir(path), err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("msgbroker: generating development secret: %w", err)
	}
	secret := base64.RawURLEncoding.EncodeToString(raw)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return readDevSecret("", path)
	}
	if err != nil {
		return "", fmt.Errorf("msgbroker: creating development secret: %w", err)
	}
	if _, err := f.WriteString(secret + "\n"); err != nil {
		_ = f.Close()
		return "", fmt.Errorf("msgbroker: writing development secret %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("msgbroker: writing development secret %s: %w", path, err)
	}
	logger.Warn("DEVELOPMENT SECRET GENERATED — do not use dev_keys in production", zap.String("path", path))
	return secret, nil
}
