package broker_test

import (
	"context"
	"strings"
	"testing"

	"github.com/uptrace/bun"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/internal/certstore"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

// TestKeysRotateAndRetireCoverCaddysStorage: values of Caddy's storage
// sealed with the keyring (the CA's keys) keep a key from being retired
// until keys rotate has re-encrypted them, like message bodies, and read
// back afterwards.
func TestKeysRotateAndRetireCoverCaddysStorage(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		f := newKeysFixture(t, db, 1)
		ctx := context.Background()
		oldID := f.keys.Keyring.PrimaryID()
		sealed := certstore.New(f.store.CertData, certstore.Options{Sealer: f.keys.Keyring})
		values := map[string]string{
			"pki/authorities/local/root.key": "-----BEGIN EC PRIVATE KEY-----",
			"pki/authorities/local/root.crt": "-----BEGIN CERTIFICATE-----",
		}
		for k, v := range values {
			mustOK(t, sealed.Store(ctx, k, []byte(v)))
		}
		plain := certstore.New(f.store.CertData, certstore.Options{})
		mustOK(t, plain.Store(ctx, "unsealed/value", []byte("as given")))

		newID, err := f.keys.Add(ctx, testActor)
		mustOK(t, err)
		before, _, err := f.keys.Usage(ctx)
		mustOK(t, err)
		if len(before) != 2 || before[0].ID != oldID || before[0].StorageValues != 2 || before[1].StorageValues != 0 {
			t.Fatalf("Usage before rotating = %+v, want the 2 storage values under %s", before, oldID)
		}
		res, err := f.keys.Reencrypt(ctx, testActor, broker.ReencryptOptions{MaxBatches: 0})
		mustOK(t, err)
		if res.StorageValues != 2 || res.Reencrypted != 1 || res.KeyID != newID {
			t.Fatalf("Reencrypt = %+v, want 1 body and 2 storage values under %s", res, newID)
		}
		usage, err := certstore.KeyUsage(ctx, f.store.CertData)
		mustOK(t, err)
		if usage[newID] != 2 || usage[oldID] != 0 || usage[certstore.Unsealed] != 1 {
			t.Fatalf("storage key usage after rotating = %v", usage)
		}
		for k, v := range values {
			got, err := sealed.Load(ctx, k)
			if err != nil || string(got) != v {
				t.Errorf("Load(%s) after rotating = %q, %v", k, got, err)
			}
		}
		mustOK(t, f.keys.Retire(ctx, testActor, oldID))
	})
}

// TestKeysRetireRefusesAKeyThatSealsAStorageValue: no body uses the key,
// a CA key in the storage does.
func TestKeysRetireRefusesAKeyThatSealsAStorageValue(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		f := newKeysFixture(t, db, 0)
		ctx := context.Background()
		oldID := f.keys.Keyring.PrimaryID()
		sealed := certstore.New(f.store.CertData, certstore.Options{Sealer: f.keys.Keyring})
		mustOK(t, sealed.Store(ctx, "pki/authorities/local/root.key", []byte("KEY")))
		_, err := f.keys.Add(ctx, testActor)
		mustOK(t, err)
		err = f.keys.Retire(ctx, testActor, oldID)
		wantKind(t, err, apperr.Conflict, "key_in_use")
		if err == nil || !strings.Contains(err.Error(), "1 value of Caddy's storage (certificates, CA keys) is still encrypted with key ") {
			t.Errorf("retire: %v, want it to name the storage value", err)
		}
	})
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
