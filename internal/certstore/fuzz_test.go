package certstore_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"path"
	"slices"
	"testing"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/internal/certstore"
	"github.com/msgbroker/caddy-msgbroker/internal/keyring"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

// FuzzStorageKey stores any value under any key on SQLite: a key is either
// refused as invalid_storage_key, with nothing stored, or stored so that
// it loads back byte for byte, stats as a value, is listed in its
// directory, and is gone after Delete.
func FuzzStorageKey(f *testing.F) {
	for _, seed := range []string{
		"certificates/acme-v02.api.letsencrypt.org-directory/example.com/example.com.crt",
		"pki/authorities/local/root.key", "a", "a/b", "", "/", "a/", "a//b", "./a", "a/..", "..",
		"a ", " a", "a\x00", "\xff", "ü/🔑", "a-b/c0", "issue_cert_*.example.com",
	} {
		f.Add(seed, []byte("value"))
	}
	f.Add("sealed", []byte("\x01\x02k1012345678901234567890123456789"))
	s := newStore(storagetest.OpenSQLite(f), 0)
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		ctx := t.Context()
		defer clearStore(s) // a failed run must not leave keys to the next
		err := s.Store(ctx, key, value)
		if certstore.CheckKey(key) != nil {
			if e, ok := apperr.As(err); !ok || e.Code != "invalid_storage_key" {
				t.Fatalf("Store(%q) of an invalid key = %v", key, err)
			}
			if all, _ := s.List(ctx, "", true); len(all) != 0 {
				t.Fatalf("an invalid key left %q behind", all)
			}
			return
		}
		if err != nil {
			t.Fatalf("Store(%q) = %v", key, err)
		}
		got, err := s.Load(ctx, key)
		if _, envelope := keyring.KeyID(value); envelope == nil {
			// Looks sealed: a node without the keyring refuses it.
			if e, ok := apperr.As(err); !ok || e.Code != "storage_value_sealed" {
				t.Fatalf("Load(%q) of an envelope without a keyring = %v", key, err)
			}
		} else if err != nil || !bytes.Equal(got, value) {
			t.Fatalf("Load(%q) = %q, %v, want %q", key, got, err, value)
		}
		info, err := s.Stat(ctx, key)
		if err != nil || !info.IsTerminal || info.Size != int64(len(value)) || info.Key != key {
			t.Fatalf("Stat(%q) = %+v, %v", key, info, err)
		}
		dir := path.Dir(key)
		if dir == "." {
			dir = ""
		}
		listed, err := s.List(ctx, dir, false)
		if err != nil || !slices.Contains(listed, key) {
			t.Fatalf("List(%q) = %q, %v, want %q in it", dir, listed, err, key)
		}
		if err := s.Delete(ctx, key); err != nil {
			t.Fatalf("Delete(%q) = %v", key, err)
		}
		if _, err := s.Load(ctx, key); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Load(%q) after Delete = %v", key, err)
		}
		if all, _ := s.List(ctx, "", true); len(all) != 0 {
			t.Fatalf("Delete(%q) left %q", key, all)
		}
	})
}

// clearStore deletes every key of s.
func clearStore(s *certstore.Store) {
	keys, _ := s.List(context.Background(), "", false)
	for _, k := range keys {
		_ = s.Delete(context.Background(), k)
	}
}
