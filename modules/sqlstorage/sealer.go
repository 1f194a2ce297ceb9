package sqlstorage

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/msgbroker/caddy-msgbroker/internal/keyring"
)

// keyringCheckInterval is how often, at most, encrypting looks whether the
// keyring file changed: as for message bodies, a node encrypts with a key
// `caddy msgbroker keys rotate` added within this interval, so nothing is
// sealed under a key about to be retired.
const keyringCheckInterval = 2 * time.Second

// fileSealer encrypts with the keyring in a file and follows the file:
// before encrypting (at most every keyringCheckInterval), and whenever a
// value is sealed under a key it does not hold (keys rotate re-encrypts
// the values while this config runs), it reads the file again if it
// changed.
type fileSealer struct {
	ring       atomic.Pointer[keyring.Keyring]
	logger     *zap.Logger
	checkEvery time.Duration

	mu      sync.Mutex
	watch   *keyring.FileWatch
	checked time.Time
}

// openSealer resolves placeholders in path and loads the keyring there.
func openSealer(path string, logger *zap.Logger) (*fileSealer, error) {
	resolved, err := caddy.NewReplacer().ReplaceOrErr(path, true, true)
	if err != nil {
		return nil, fmt.Errorf("msgbroker_sql storage: encryption_key_file: %w", err)
	}
	if _, err := os.Stat(resolved); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("msgbroker_sql storage: encryption_key_file %s does not exist. Caddy sets up its storage "+
			"before any app, so a keyring the msgbroker app's dev_keys would create is not there on the first start: "+
			"create it first: a JSON file of mode 0600 with one key from openssl rand -base64 32 (README: Keyring file)", resolved)
	}
	watch := keyring.NewFileWatch(resolved)
	kr, err := keyring.Load(resolved)
	if err != nil {
		return nil, fmt.Errorf("msgbroker_sql storage: encryption_key_file: %w", err)
	}
	if err := keyring.CheckPermissions(resolved); err != nil {
		logger.Warn("keyring file permissions are too open", zap.String("path", resolved), zap.Error(err))
	}
	s := &fileSealer{logger: logger, checkEvery: keyringCheckInterval, watch: watch, checked: time.Now()}
	s.ring.Store(kr)
	return s, nil
}

func (s *fileSealer) Encrypt(plaintext, associatedData []byte) ([]byte, error) {
	s.follow(false)
	return s.ring.Load().Encrypt(plaintext, associatedData)
}

func (s *fileSealer) Decrypt(envelope, associatedData []byte) ([]byte, error) {
	plain, err := s.ring.Load().Decrypt(envelope, associatedData)
	if !errors.Is(err, keyring.ErrUnknownKey) || !s.follow(true) {
		return plain, err
	}
	return s.ring.Load().Decrypt(envelope, associatedData)
}

// follow reads the keyring file again if it changed since it was read
// (keyring.FileWatch, as the app's watch does), and reports whether it
// did. Unless now, it looks at most every checkEvery. A file that does not
// load is reported and the keys in memory stay in use.
func (s *fileSealer) follow(now bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !now && time.Since(s.checked) < s.checkEvery {
		return false
	}
	s.checked = time.Now()
	kr, err := s.watch.Changed()
	if err != nil {
		s.logger.Error("keyring file changed but does not load; keeping the keys in memory", zap.String("path", s.watch.Path()), zap.Error(err))
		return false
	}
	if kr == nil {
		return false
	}
	s.ring.Store(kr)
	s.logger.Info("keyring reloaded", zap.String("path", s.watch.Path()), zap.String("primary_key", kr.PrimaryID()))
	return true
}
