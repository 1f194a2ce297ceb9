// Package certstore keeps Caddy's certificate storage (certmagic.Storage:
// certificates, their keys, the pki CA's keys, and the locks nodes take
// around certificate operations) in the broker's SQL database, so that
// several gateway nodes share one CA and one set of certificates.
//
// Its semantics are those of certmagic's FileStorage, the storage Caddy
// uses by default: keys are slash-separated paths, a key is either a value
// ("terminal") or a directory of keys below it, never both; listing a
// missing directory and loading a missing key fail with fs.ErrNotExist;
// deleting a missing key is not an error. The tests compare the two.
package certstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/internal/keyring"
	"github.com/msgbroker/caddy-msgbroker/storage"
)

// MaxKeyLength is the longest key or lock name, in characters: what
// MySQL's indexed column holds (768 utf8mb4 characters are InnoDB's 3,072
// index bytes). Enforced here so SQLite, which does not enforce column
// lengths, refuses exactly what MySQL would.
const MaxKeyLength = 768

// DefaultLockTTL is how long a lock outlives its holder's last sign of
// life. The holder extends it every third of that while it works, so only
// a node that died (or lost its database) lets a lock expire.
const DefaultLockTTL = 30 * time.Second

// maxPoll is the longest wait between two attempts to take a held lock,
// the interval certmagic's FileStorage polls at.
const maxPoll = time.Second

// Store is a certmagic.Storage in the broker's database.
type Store struct {
	repo   *storage.CertDataRepo
	ttl    time.Duration
	owner  string
	logger *zap.Logger
	locks  *leases
	sealer Sealer
}

// Sealer encrypts values at rest: the keyring of message bodies, so that a
// database dump or backup does not reveal the CA's private keys.
type Sealer interface {
	Encrypt(plaintext, associatedData []byte) ([]byte, error)
	Decrypt(envelope, associatedData []byte) ([]byte, error)
}

// Options configure a Store.
type Options struct {
	// LockTTL is how long a lock outlives its holder's last extension
	// (DefaultLockTTL when zero).
	LockTTL time.Duration
	// Sealer, if set, encrypts every value, bound to its key (see
	// AssociatedData); without it values are stored as given.
	Sealer Sealer
	// Logger gets lock events; nil discards them.
	Logger *zap.Logger
}

// New returns a Store over repo.
func New(repo *storage.CertDataRepo, opts Options) *Store {
	if opts.LockTTL <= 0 {
		opts.LockTTL = DefaultLockTTL
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	return &Store{repo: repo, ttl: opts.LockTTL, owner: ownerPrefix(), logger: opts.Logger, locks: newLeases(), sealer: opts.Sealer}
}

// AssociatedData is what a sealed value is bound to: its key, so that a
// value copied to another key (the CA's key over a site's) does not
// decrypt there.
func AssociatedData(key string) []byte { return []byte("caddy-storage:" + key) }

// String names the storage in Caddy's logs.
func (s *Store) String() string { return "msgbroker_sql" }

// Store puts value at key, replacing what was there. A key below a stored
// value, or a key that is a directory, is refused: a key is one or the
// other, as on a file system.
func (s *Store) Store(ctx context.Context, key string, value []byte) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	if err := s.refuseShapeChange(ctx, key); err != nil {
		return err
	}
	if s.sealer != nil {
		sealed, err := s.sealer.Encrypt(value, AssociatedData(key))
		if err != nil {
			return fmt.Errorf("storage key %q: encrypting: %w", key, err)
		}
		value = sealed
	}
	return s.repo.Put(ctx, key, value)
}

// refuseShapeChange fails when storing key would make a value a directory
// or a directory a value.
func (s *Store) refuseShapeChange(ctx context.Context, key string) error {
	parent, err := s.repo.AnyOf(ctx, ancestors(key))
	if err != nil {
		return err
	}
	if parent != "" {
		return apperr.New(apperr.Conflict, "storage_key_conflict", "storage key %q: %q is a value, not a directory", key, parent)
	}
	isDir, err := s.repo.HasUnder(ctx, key)
	if err != nil {
		return err
	}
	if isDir {
		return errIsDirectory(key)
	}
	return nil
}

// errIsDirectory refuses to treat a directory as a value.
func errIsDirectory(key string) error {
	return apperr.New(apperr.Conflict, "storage_key_conflict", "storage key %q is a directory", key)
}

// Load returns the value at key; fs.ErrNotExist when there is none.
func (s *Store) Load(ctx context.Context, key string) ([]byte, error) {
	if err := CheckKey(key); err != nil {
		return nil, err
	}
	row, err := s.repo.Get(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, s.missing(ctx, key)
	}
	if err != nil {
		return nil, err
	}
	if s.sealer == nil {
		if _, err := keyring.KeyID(row.Value); err == nil {
			// Sealed by a node with encryption_key_file: handing the
			// envelope to Caddy as a certificate or key would fail later,
			// less clearly, and a value Caddy then stores again here
			// would not decrypt on the nodes that encrypt.
			return nil, apperr.New(apperr.Unavailable, "storage_value_sealed",
				"storage key %q is encrypted with the keyring: set encryption_key_file on this node too", key)
		}
		return row.Value, nil
	}
	value, err := s.sealer.Decrypt(row.Value, AssociatedData(key))
	if err != nil {
		return nil, apperr.Wrap(err, apperr.Unavailable, "storage_value_undecryptable",
			"storage key %q does not decrypt with the keyring: it was written without encryption, under a retired key or another keyring, or altered", key)
	}
	return value, nil
}

// missing is the error for a key without a value: a directory, or nothing.
func (s *Store) missing(ctx context.Context, key string) error {
	isDir, err := s.repo.HasUnder(ctx, key)
	if err != nil {
		return err
	}
	if isDir {
		return errIsDirectory(key)
	}
	return fmt.Errorf("storage key %q: %w", key, fs.ErrNotExist)
}

// Delete deletes key and every key below it. A missing key is not an
// error.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	_, err := s.repo.DeleteTree(ctx, key)
	return err
}

// Exists reports whether key is a value or a directory. An error reading
// the database reports false, as certmagic's interface asks.
func (s *Store) Exists(ctx context.Context, key string) bool {
	_, err := s.Stat(ctx, key)
	return err == nil
}

// Stat describes key: a value's size and modification time, or a
// directory (IsTerminal false) modified when its newest key was. With a
// Sealer the size is what the database holds, the sealed value.
func (s *Store) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	if err := CheckKey(key); err != nil {
		return certmagic.KeyInfo{}, err
	}
	e, err := s.repo.Entry(ctx, key)
	if err == nil {
		return certmagic.KeyInfo{Key: key, Modified: e.Modified, Size: e.Size, IsTerminal: true}, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return certmagic.KeyInfo{}, err
	}
	below, err := s.repo.Under(ctx, key)
	if err != nil {
		return certmagic.KeyInfo{}, err
	}
	if len(below) == 0 {
		return certmagic.KeyInfo{}, fmt.Errorf("storage key %q: %w", key, fs.ErrNotExist)
	}
	return certmagic.KeyInfo{Key: key, Modified: newest(below), IsTerminal: false}, nil
}

// List returns the keys below dir ("" is the root), in byte order: its
// direct entries, values and directories alike, or with recursive every
// value and directory below it. Listing a value gives nothing; listing a
// directory that does not exist fails with fs.ErrNotExist.
func (s *Store) List(ctx context.Context, dir string, recursive bool) ([]string, error) {
	if dir != "" {
		if err := CheckKey(dir); err != nil {
			return nil, err
		}
	}
	below, err := s.repo.Under(ctx, dir)
	if err != nil {
		return nil, err
	}
	if len(below) == 0 && dir != "" {
		if _, err := s.repo.Entry(ctx, dir); err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				return nil, fmt.Errorf("storage directory %q: %w", dir, fs.ErrNotExist)
			}
			return nil, err
		}
	}
	return listing(dir, below, recursive), nil
}

// listing derives the entries of dir from the keys below it: every key
// stands for itself and the directories on its way down from dir.
func listing(dir string, below []storage.CertEntry, recursive bool) []string {
	prefix := ""
	if dir != "" {
		prefix = dir + "/"
	}
	seen := map[string]bool{}
	var out []string
	for _, e := range below {
		rel := strings.TrimPrefix(e.Key, prefix)
		parts := strings.Split(rel, "/")
		if !recursive {
			parts = parts[:1]
		}
		for i := range parts {
			entry := prefix + strings.Join(parts[:i+1], "/")
			if !seen[entry] {
				seen[entry] = true
				out = append(out, entry)
			}
		}
	}
	slices.Sort(out)
	return out
}

// newest returns the latest modification time among entries.
func newest(entries []storage.CertEntry) time.Time {
	var t time.Time
	for _, e := range entries {
		if e.Modified.After(t) {
			t = e.Modified
		}
	}
	return t
}

// ancestors returns the directories key lies in, outermost first:
// "a/b/c" → "a", "a/b".
func ancestors(key string) []string {
	var out []string
	for i := range len(key) {
		if key[i] == '/' {
			out = append(out, key[:i])
		}
	}
	return out
}

// CheckKey refuses what cannot be a storage key or lock name the same way
// on every database: see keyRules.
func CheckKey(key string) error {
	for _, rule := range keyRules {
		if rule.refuses(key) {
			return invalidKey(key, rule.why)
		}
	}
	return nil
}

// keyRules refuse, in order: an empty key; one that is not UTF-8; one
// longer than MaxKeyLength characters; control characters; a segment
// ending in a space (MySQL's padded collation would make a directory "a "
// equal to "a"); and what is not a clean slash-separated path (a leading
// or trailing slash, an empty, "." or ".." segment), which a file system
// would silently make into another key.
var keyRules = []struct {
	refuses func(key string) bool
	why     string
}{
	{func(k string) bool { return k == "" }, "is empty"},
	{func(k string) bool { return !utf8.ValidString(k) }, "is not valid UTF-8"},
	{func(k string) bool { return utf8.RuneCountInString(k) > MaxKeyLength }, fmt.Sprintf("is longer than %d characters", MaxKeyLength)},
	{func(k string) bool { return strings.IndexFunc(k, unicode.IsControl) >= 0 }, "holds a control character"},
	{func(k string) bool { return strings.HasSuffix(k, " ") || strings.Contains(k, " /") }, "has a segment ending in a space"},
	{func(k string) bool { return !cleanPath(k) }, "is not a clean path (a leading or trailing slash, or an empty, '.' or '..' segment)"},
}

func cleanPath(key string) bool {
	if path.Clean(key) != key || strings.HasPrefix(key, "/") {
		return false
	}
	return !slices.Contains(strings.Split(key, "/"), "..") && key != "."
}

func invalidKey(key, why string) error {
	const show = 80
	shown := key
	if len(shown) > show {
		shown = shown[:show] + "…"
	}
	return apperr.New(apperr.Invalid, "invalid_storage_key", "storage key %q %s", shown, why)
}

// ownerPrefix names this process in the locks it holds, so an operator
// can tell which node holds one: host, process id, and a random part that
// tells two runs of the same process apart.
func ownerPrefix() string {
	host, err := os.Hostname()
	if err != nil {
		host = ""
	}
	return ownerName(host, os.Getpid(), randomHex(8))
}

// maxHostInOwner keeps the owner column (255 characters) from overflowing
// whatever the host name.
const maxHostInOwner = 100

func ownerName(host string, pid int, random string) string {
	if host == "" {
		host = "unknown-host"
	}
	if runes := []rune(host); len(runes) > maxHostInOwner {
		host = string(runes[:maxHostInOwner])
	}
	return fmt.Sprintf("%s/%d/%s", host, pid, random)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}
