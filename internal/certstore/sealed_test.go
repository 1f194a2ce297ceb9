package certstore_test

import (
	"bytes"
	"testing"

	"github.com/uptrace/bun"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/internal/certstore"
	"github.com/msgbroker/caddy-msgbroker/internal/keyring"
	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

const caKey = "pki/authorities/local/root.key"

var caKeyPEM = []byte("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIsecret\n-----END EC PRIVATE KEY-----\n")

// TestSealedValuesAreUnreadableInTheDatabase: with a keyring, the CA's
// private key is not in the database in the clear, loads back whole, and
// does not load when moved to another key, read without the keyring's
// key, or altered.
func TestSealedValuesAreUnreadableInTheDatabase(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		repo := storage.New(db).CertData
		kr := newKeyring(t)
		s := certstore.New(repo, certstore.Options{Sealer: kr})
		must(t, s.Store(ctx, caKey, caKeyPEM))
		raw, err := repo.Get(ctx, caKey)
		must(t, err)
		if bytes.Contains(raw.Value, []byte("PRIVATE KEY")) || bytes.Contains(raw.Value, []byte("secret")) {
			t.Fatal("the CA key is in the database in the clear")
		}
		if id, err := keyring.KeyID(raw.Value); err != nil || id != kr.PrimaryID() {
			t.Fatalf("stored value's key id = %q, %v, want the primary %s", id, err, kr.PrimaryID())
		}
		got, err := s.Load(ctx, caKey)
		if err != nil || !bytes.Equal(got, caKeyPEM) {
			t.Fatalf("Load = %q, %v", got, err)
		}

		plainNode := certstore.New(repo, certstore.Options{})
		_, err = plainNode.Load(ctx, caKey)
		if e, ok := apperr.As(err); !ok || e.Code != "storage_value_sealed" {
			t.Errorf("a node without the keyring loading a sealed value = %v, want storage_value_sealed", err)
		}
		must(t, repo.Put(ctx, "certificates/local/x/x.key", raw.Value))
		wantUndecryptable(t, s, "certificates/local/x/x.key", "a sealed value moved to another key")
		other := certstore.New(repo, certstore.Options{Sealer: newKeyring(t)})
		wantUndecryptable(t, other, caKey, "another keyring")
		must(t, repo.Put(ctx, "plain", []byte("stored without encryption")))
		wantUndecryptable(t, s, "plain", "a value stored without encryption")
		altered := bytes.Clone(raw.Value)
		altered[len(altered)-1] ^= 1
		must(t, repo.Put(ctx, caKey, altered))
		wantUndecryptable(t, s, caKey, "an altered value")
	})
}

func wantUndecryptable(t *testing.T, s *certstore.Store, key, what string) {
	t.Helper()
	_, err := s.Load(testContext(t), key)
	if e, ok := apperr.As(err); !ok || e.Code != "storage_value_undecryptable" || e.Kind != apperr.Unavailable {
		t.Errorf("Load of %s = %v, want storage_value_undecryptable", what, err)
	}
}

// TestResealMovesValuesToThePrimaryKey: after a key is added, Reseal
// re-encrypts what the older key sealed and leaves alone what it cannot
// (values stored without encryption, under a key the keyring lacks, or
// altered); KeyUsage counts them before and after.
func TestResealMovesValuesToThePrimaryKey(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		repo := storage.New(db).CertData
		kr := newKeyring(t)
		oldID := kr.PrimaryID()
		s := certstore.New(repo, certstore.Options{Sealer: kr})
		for _, k := range []string{caKey, "pki/authorities/local/root.crt", "certificates/local/a/a.key"} {
			must(t, s.Store(ctx, k, []byte("value of "+k)))
		}
		must(t, repo.Put(ctx, "plain", []byte("as given")))
		foreign := certstore.New(repo, certstore.Options{Sealer: newKeyring(t)})
		must(t, foreign.Store(ctx, "foreign", []byte("x")))
		raw, err := repo.Get(ctx, "certificates/local/a/a.key")
		must(t, err)
		raw.Value[len(raw.Value)-1] ^= 1
		must(t, repo.Put(ctx, "certificates/local/a/a.key", raw.Value))

		usage, err := certstore.KeyUsage(ctx, repo)
		must(t, err)
		if usage[oldID] != 3 || usage[certstore.Unsealed] != 1 || len(usage) != 3 {
			t.Fatalf("KeyUsage before = %v", usage)
		}
		newKey, err := keyring.Generate("second")
		must(t, err)
		must(t, kr.Add(newKey))
		res, err := certstore.Reseal(ctx, repo, kr)
		must(t, err)
		if res.Moved != 2 || res.Skipped != 3 {
			t.Fatalf("Reseal = %+v, want 2 moved, 3 skipped (plain, foreign, altered)", res)
		}
		usage, err = certstore.KeyUsage(ctx, repo)
		must(t, err)
		if usage["second"] != 2 || usage[oldID] != 1 {
			t.Fatalf("KeyUsage after = %v, want 2 under the new key and the altered one left", usage)
		}
		for _, k := range []string{caKey, "pki/authorities/local/root.crt"} {
			if got, err := s.Load(ctx, k); err != nil || string(got) != "value of "+k {
				t.Errorf("Load(%s) after Reseal = %q, %v", k, got, err)
			}
		}
		again, err := certstore.Reseal(ctx, repo, kr)
		must(t, err)
		if again.Moved != 0 {
			t.Errorf("a second Reseal moved %d values", again.Moved)
		}
	})
}
