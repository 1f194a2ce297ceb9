package sqlstorage

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/msgbroker/caddy-msgbroker/internal/keyring"
)

// fileSealer encrypts with the keyring in a file and reads the file again
// when a value is sealed under a key it does not hold: `caddy msgbroker
// keys rotate` adds a key to the file and re-encrypts the values with it
// while this config runs. It encrypts with the primary key it last read,
// which keys rotate moves on to the newest at its next run.
type fileSealer struct {
	path   string
	ring   atomic.Pointer[keyring.Keyring]
	logger *zap.Logger
}

// openSealer resolves placeholders in path and loads the keyring there.
func openSealer(path string, logger *zap.Logger) (*fileSealer, error) {
	resolved, err := caddy.NewReplacer().ReplaceOrErr(path, true, true)
	if err != nil {
		return nil, fmt.Errorf("msgbroker_sql storage: encryption_key_file: %w", err)
	}
	kr, err := keyring.Load(resolved)
	if err != nil {
		return nil, fmt.Errorf("msgbroker_sql storage: encryption_key_file: %w", err)
	}
	if err := keyring.CheckPermissions(resolved); err != nil {
		logger.Warn("keyring file permissions are too open", zap.String("path", resolved), zap.Error(err))
	}
	s := &fileSealer{path: resolved, logger: logger}
	s.ring.Store(kr)
	return s, nil
}

func (s *fileSealer) Encrypt(plaintext, associatedData []byte) ([]byte, error) {
	return s.ring.Load().Encrypt(plaintext, associatedData)
}

func (s *fileSealer) Decrypt(envelope, associatedData []byte) ([]byte, error) {
	plain, err := s.ring.Load().Decrypt(envelope, associatedData)
	if !errors.Is(err, keyring.ErrUnknownKey) {
		return plain, err
	}
	kr, loadErr := keyring.Load(s.path)
	if loadErr != nil {
		s.logger.Error("a value is sealed under a key this node does not hold, and the keyring file does not load", zap.Error(loadErr))
		return nil, err
	}
	s.ring.Store(kr)
	s.logger.Info("keyring reloaded for a value sealed under a new key", zap.String("path", s.path), zap.String("primary_key", kr.PrimaryID()))
	return kr.Decrypt(envelope, associatedData)
}
