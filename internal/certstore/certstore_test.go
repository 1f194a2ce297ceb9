package certstore_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/uptrace/bun"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/internal/certstore"
	"github.com/msgbroker/caddy-msgbroker/internal/keyring"
	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

func newStore(db *bun.DB, ttl time.Duration) *certstore.Store {
	return certstore.New(storage.New(db).CertData, certstore.Options{LockTTL: ttl})
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// outcome is what a storage call gave, in terms both storages can share.
type outcome struct {
	value    string
	list     []string
	terminal bool
	size     int64
	exists   bool
	err      string // "", "not exist" or "error"
}

func errClass(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, fs.ErrNotExist):
		return "not exist"
	default:
		return "error"
	}
}

// step is one call, made on both storages.
type step struct {
	name string
	do   func(ctx context.Context, s certmagic.Storage) outcome
}

func store(key, value string) step {
	return step{"Store " + key, func(ctx context.Context, s certmagic.Storage) outcome {
		return outcome{err: errClass(s.Store(ctx, key, []byte(value)))}
	}}
}

func load(key string) step {
	return step{"Load " + key, func(ctx context.Context, s certmagic.Storage) outcome {
		v, err := s.Load(ctx, key)
		return outcome{value: string(v), err: errClass(err)}
	}}
}

func list(dir string, recursive bool) step {
	return step{"List " + dir + map[bool]string{true: " recursive"}[recursive], func(ctx context.Context, s certmagic.Storage) outcome {
		keys, err := s.List(ctx, dir, recursive)
		slices.Sort(keys) // FileStorage walks in its own order
		return outcome{list: keys, err: errClass(err)}
	}}
}

func stat(key string) step {
	return step{"Stat " + key, func(ctx context.Context, s certmagic.Storage) outcome {
		info, err := s.Stat(ctx, key)
		o := outcome{terminal: info.IsTerminal, err: errClass(err)}
		if info.IsTerminal {
			o.size = info.Size // a directory's size is the file system's business
		}
		if err == nil && info.Key != key {
			o.err = "wrong key " + info.Key
		}
		return o
	}}
}

func exists(key string) step {
	return step{"Exists " + key, func(ctx context.Context, s certmagic.Storage) outcome {
		return outcome{exists: s.Exists(ctx, key)}
	}}
}

func del(key string) step {
	return step{"Delete " + key, func(ctx context.Context, s certmagic.Storage) outcome {
		return outcome{err: errClass(s.Delete(ctx, key))}
	}}
}

// TestBehavesLikeCaddysFileStorage runs one script of storage calls on
// certmagic's FileStorage — what Caddy uses by default, and what its code
// was written against — and on the SQL storage, on each database, and
// wants the same outcome from every call.
//
// Where the two differ on purpose the script does not go, and other tests
// do: the SQL storage keeps no empty directories
// (TestDeletingTheLastKeyLeavesNoDirectory), and a key below a value is
// simply not there (TestNothingIsBelowAValue), where a file system
// answers "not a directory" — which FileStorage.Exists even takes for
// "exists".
func TestBehavesLikeCaddysFileStorage(t *testing.T) {
	const crt = "certificates/acme-v02.api.letsencrypt.org-directory/example.com/example.com.crt"
	script := []step{
		list("", false), list("", true),
		store(crt, "CRT"),
		store("certificates/acme-v02.api.letsencrypt.org-directory/example.com/example.com.key", "KEY"),
		store("certificates/acme-v02.api.letsencrypt.org-directory/example.com/example.com.json", "{}"),
		store("certificates/acme-v02.api.letsencrypt.org-directory/bücher.de/bücher.de.crt", "ü"),
		store("certificates/local/b.org/b.org.crt", "B"),
		store("pki/authorities/local/root.crt", "ROOT"),
		store("a/x", "ax"), store("a-b", "dash"), store("a0", "zero"), store("A", "upper"),
		store("empty", ""),
		load(crt), load("A"), load("a0"), load("empty"), load("certificates/acme-v02.api.letsencrypt.org-directory/bücher.de/bücher.de.crt"),
		load("missing"), load("certificates/missing/x"), load("a"),
		exists(crt), exists("certificates"), exists("certificates/acme-v02.api.letsencrypt.org-directory"),
		exists("missing"), exists("a"), exists("a/x"), exists("a/y"),
		stat(crt), stat("certificates/local"), stat("empty"), stat("missing"), stat("a"), stat("a/x"),
		list("", false), list("", true), list("certificates", false), list("certificates", true),
		list("certificates/acme-v02.api.letsencrypt.org-directory/example.com", false),
		list("a", false), list("a/x", false), list("missing", false), list("missing", true), list("a-b", true),
		store(crt, "CRT2"), load(crt), stat(crt),
		store("a/x/y", "under a value"), load("a/x"),
		store("a", "over a directory"), load("a"), list("a", true),
		store("certificates/local", "over a directory"),
		del("missing"), del("certificates/missing/x"),
		del("a/x"), load("a/x"), exists("a/x"),
		del("certificates/acme-v02.api.letsencrypt.org-directory/example.com"),
		exists(crt), load(crt), list("certificates", true),
		del("pki/authorities/local/root.crt"), load("pki/authorities/local/root.crt"),
		exists("certificates/local/b.org"), load("certificates/local/b.org/b.org.crt"),
	}
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		for _, sealed := range []bool{false, true} {
			t.Run(map[bool]string{false: "plain", true: "sealed"}[sealed], func(t *testing.T) {
				ctx := testContext(t)
				file := &certmagic.FileStorage{Path: t.TempDir()}
				opts := certstore.Options{}
				if sealed {
					opts.Sealer = newKeyring(t)
				}
				sql := certstore.New(storage.New(db).CertData, opts)
				t.Cleanup(func() { _ = sql.Delete(context.Background(), "a"); clearStore(sql) })
				for i, s := range script {
					want, got := s.do(ctx, file), s.do(ctx, sql)
					if sealed {
						got.size = want.size // the stored size is the sealed value's
					}
					if !equalOutcomes(want, got) {
						t.Errorf("step %d, %s: SQL storage %+v, FileStorage %+v", i, s.name, got, want)
					}
				}
			})
		}
	})
}

func newKeyring(t *testing.T) *keyring.Keyring {
	t.Helper()
	kr, _, err := keyring.CreateIfMissing(filepath.Join(t.TempDir(), "keyring.json"))
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func equalOutcomes(a, b outcome) bool {
	return a.value == b.value && slices.Equal(a.list, b.list) && a.terminal == b.terminal &&
		a.size == b.size && a.exists == b.exists && a.err == b.err
}

// TestDeletingTheLastKeyLeavesNoDirectory is where the SQL storage differs
// from a file system on purpose: it has no empty directories, so a
// directory is gone with its last key.
func TestDeletingTheLastKeyLeavesNoDirectory(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		s := newStore(db, 0)
		must(t, s.Store(ctx, "d/e/f", []byte("v")))
		must(t, s.Delete(ctx, "d/e/f"))
		for _, key := range []string{"d/e/f", "d/e", "d"} {
			if s.Exists(ctx, key) {
				t.Errorf("%s exists after its last key was deleted", key)
			}
		}
		if _, err := s.List(ctx, "d", true); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("List(d) = %v, want fs.ErrNotExist", err)
		}
		if keys, err := s.List(ctx, "", true); err != nil || len(keys) != 0 {
			t.Errorf("List(root) = %v, %v, want nothing", keys, err)
		}
	})
}

// TestNothingIsBelowAValue: a key under a value does not exist, for
// every call, and cannot be stored.
func TestNothingIsBelowAValue(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		s := newStore(db, 0)
		must(t, s.Store(ctx, "v", []byte("value")))
		if _, err := s.Load(ctx, "v/x"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Load below a value = %v, want fs.ErrNotExist", err)
		}
		if _, err := s.Stat(ctx, "v/x"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Stat below a value = %v, want fs.ErrNotExist", err)
		}
		if s.Exists(ctx, "v/x") {
			t.Error("a key below a value exists")
		}
		err := s.Store(ctx, "v/x/y", []byte("x"))
		if e, ok := apperr.As(err); !ok || e.Code != "storage_key_conflict" || !strings.Contains(err.Error(), `"v" is a value`) {
			t.Errorf("Store below a value = %v, want storage_key_conflict naming v", err)
		}
		if keys, err := s.List(ctx, "v", true); err != nil || len(keys) != 0 {
			t.Errorf("List(a value) = %v, %v, want nothing", keys, err)
		}
		must(t, s.Store(ctx, "d/x", []byte("x")))
		err = s.Store(ctx, "d", []byte("x"))
		if e, ok := apperr.As(err); !ok || e.Code != "storage_key_conflict" || !strings.Contains(err.Error(), `"d" is a directory`) {
			t.Errorf("Store over a directory = %v, want storage_key_conflict", err)
		}
		if _, err := s.Load(ctx, "d"); err == nil || errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "is a directory") {
			t.Errorf("Load(a directory) = %v, want an is-a-directory error", err)
		}
	})
}

// TestStatReportsWhatWasStored checks the size and times Stat gives: a
// value's own, a directory's newest key's.
func TestStatReportsWhatWasStored(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		s := newStore(db, 0)
		before := time.Now().Add(-time.Second)
		must(t, s.Store(ctx, "dir/old", []byte("12345")))
		time.Sleep(20 * time.Millisecond)
		must(t, s.Store(ctx, "dir/sub/new", bytes.Repeat([]byte{0xff}, 70_000)))
		after := time.Now().Add(time.Second)

		old, err := s.Stat(ctx, "dir/old")
		must(t, err)
		newer, err := s.Stat(ctx, "dir/sub/new")
		must(t, err)
		dir, err := s.Stat(ctx, "dir")
		must(t, err)
		if old.Size != 5 || newer.Size != 70_000 || !old.IsTerminal || !newer.IsTerminal {
			t.Errorf("sizes %d, %d (terminal %v, %v), want 5, 70000, terminal", old.Size, newer.Size, old.IsTerminal, newer.IsTerminal)
		}
		if old.Modified.Before(before) || newer.Modified.After(after) || !newer.Modified.After(old.Modified) {
			t.Errorf("modified %v then %v, want increasing within [%v, %v]", old.Modified, newer.Modified, before, after)
		}
		if dir.IsTerminal || !dir.Modified.Equal(newer.Modified) || dir.Key != "dir" {
			t.Errorf("directory = %+v, want non-terminal modified at its newest key %v", dir, newer.Modified)
		}
		value, err := s.Load(ctx, "dir/sub/new")
		must(t, err)
		if !bytes.Equal(value, bytes.Repeat([]byte{0xff}, 70_000)) {
			t.Error("a 70,000-byte binary value did not come back as stored")
		}
	})
}

// TestRefusesTheSameKeysOnEveryDatabase: the documented limits hold
// exactly, on SQLite (which enforces no length) as on MySQL (whose
// column does, and whose collation ignores trailing spaces).
func TestRefusesTheSameKeysOnEveryDatabase(t *testing.T) {
	longest := map[string]string{
		"ascii":  strings.Repeat("k", certstore.MaxKeyLength),
		"2-byte": strings.Repeat("ü", certstore.MaxKeyLength),
		"4-byte": strings.Repeat("🔑", certstore.MaxKeyLength), // 3,072 bytes: InnoDB's whole index
		"path":   strings.Repeat("d/", certstore.MaxKeyLength/2-1) + "kk",
	}
	refused := map[string]string{
		"empty":            "",
		"one too long":     strings.Repeat("k", certstore.MaxKeyLength+1),
		"4-byte too long":  strings.Repeat("🔑", certstore.MaxKeyLength+1),
		"invalid UTF-8":    "certificates/\xff",
		"NUL":              "a\x00b",
		"leading NUL":      "\x00a",
		"newline":          "a\nb",
		"DEL":              "a\x7fb",
		"C1 control":       "a\u0085b",
		"trailing space":   "certificates/a ",
		"segment space":    "certificates/a /b",
		"leading slash":    "/certificates",
		"trailing slash":   "certificates/",
		"double slash":     "certificates//a",
		"dot":              ".",
		"dot segment":      "certificates/./a",
		"leading dot":      "./a",
		"dot-dot":          "..",
		"dot-dot segment":  "certificates/../a",
		"leading dot-dot":  "../a",
		"trailing dot-dot": "a/..",
	}
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		s := newStore(db, time.Second)
		for name, key := range longest {
			if err := s.Store(ctx, key, []byte(name)); err != nil {
				t.Errorf("%s key of %d characters refused: %v", name, certstore.MaxKeyLength, err)
				continue
			}
			if v, err := s.Load(ctx, key); err != nil || string(v) != name {
				t.Errorf("%s key: Load = %q, %v", name, v, err)
			}
			if err := s.Lock(ctx, key); err != nil {
				t.Errorf("%s lock name refused: %v", name, err)
			} else {
				must(t, s.Unlock(ctx, key))
			}
		}
		for name, key := range refused {
			calls := map[string]error{"Store": s.Store(ctx, key, []byte("x")), "Delete": s.Delete(ctx, key), "Lock": s.Lock(ctx, key)}
			_, calls["Load"] = s.Load(ctx, key)
			_, calls["Stat"] = s.Stat(ctx, key)
			if key != "" {
				_, calls["List"] = s.List(ctx, key, true)
			}
			_, calls["TryLock"] = s.TryLock(ctx, key)
			for call, err := range calls {
				if e, ok := apperr.As(err); !ok || e.Kind != apperr.Invalid || e.Code != "invalid_storage_key" {
					t.Errorf("%s of the %s key %q = %v, want invalid_storage_key", call, name, key, err)
				}
			}
		}
		keys, err := s.List(ctx, "", true)
		must(t, err)
		for _, k := range keys {
			if !strings.HasPrefix(k, "k") && !strings.HasPrefix(k, "ü") && !strings.HasPrefix(k, "🔑") && !strings.HasPrefix(k, "d") {
				t.Errorf("a refused key was stored: %q", k)
			}
		}
	})
}

// TestKeysDifferingInCaseStayApart: MySQL's column is binary, so "A" and
// "a", or a composed and a decomposed "é", are different keys, as on Linux
// file systems and SQLite.
func TestKeysDifferingInCaseStayApart(t *testing.T) {
	keys := []string{"Key", "key", "KEY", "k\u00e9y", "ke\u0301y"}
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		s := newStore(db, 0)
		for _, k := range keys {
			must(t, s.Store(ctx, k, []byte(k)))
		}
		for _, k := range keys {
			if v, err := s.Load(ctx, k); err != nil || string(v) != k {
				t.Errorf("Load(%q) = %q, %v", k, v, err)
			}
		}
		if got, err := s.List(ctx, "", false); err != nil || len(got) != len(keys) {
			t.Errorf("List = %q, %v, want the %d keys apart", got, err, len(keys))
		}
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
