package broker_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/uptrace/bun"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/internal/keyring"
	"github.com/msgbroker/caddy-msgbroker/internal/phone"
	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

// keysFixture is a keyring file with one key and n messages sealed with it.
type keysFixture struct {
	keys   *broker.Keys
	store  *storage.Store
	bodies map[string]string // message id → body
}

func newKeysFixture(t *testing.T, db *bun.DB, n int) *keysFixture {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keyring.json")
	kr, _, err := keyring.CreateIfMissing(path)
	if err != nil {
		t.Fatal(err)
	}
	hasher, err := phone.NewHasher([]byte("0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	store := storage.New(db)
	msgs := &broker.Messages{Store: store, Keys: func() *keyring.Keyring { return kr }, Hasher: func() *phone.Hasher { return hasher }}
	f := &keysFixture{keys: &broker.Keys{Store: store, Keyring: kr, Path: path}, store: store, bodies: map[string]string{}}
	for i := range n {
		body := fmt.Sprintf("body number %d", i)
		r, err := msgs.Register(context.Background(), "proxy-1", broker.RegisterRequest{SenderNumber: "+4915200000000", MessageBody: body})
		if err != nil {
			t.Fatal(err)
		}
		f.bodies[r.MessageID] = body
	}
	return f
}

// check verifies that every body decrypts with the keyring file on disk
// and returns how many rows each key id seals.
func (f *keysFixture) check(t *testing.T) map[string]int {
	t.Helper()
	onDisk, err := keyring.Load(f.keys.Path)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := f.store.Messages.List(context.Background(), storage.MessageFilter{Limit: storage.MaxPageSize})
	if err != nil {
		t.Fatal(err)
	}
	perKey := map[string]int{}
	for _, m := range rows {
		plain, err := onDisk.Decrypt(m.BodyEncrypted, []byte(m.MessageID))
		if err != nil {
			t.Fatalf("message %s does not decrypt: %v", m.MessageID, err)
		}
		if string(plain) != f.bodies[m.MessageID] {
			t.Fatalf("message %s decrypts to another body", m.MessageID)
		}
		if id, _ := keyring.KeyID(m.BodyEncrypted); id != m.EncryptionKeyID {
			t.Fatalf("message %s: envelope key %s, column %s", m.MessageID, id, m.EncryptionKeyID)
		}
		perKey[m.EncryptionKeyID]++
	}
	return perKey
}

func TestKeysRotationResumesAndEndsWithEveryBodyUnderTheNewKey(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		f := newKeysFixture(t, db, 7)
		ctx := context.Background()
		oldID := f.keys.Keyring.PrimaryID()
		newID, err := f.keys.Add(ctx, testActor)
		if err != nil {
			t.Fatal(err)
		}
		if newID == oldID || f.keys.Keyring.PrimaryID() != newID {
			t.Fatalf("new key %s, primary %s, old %s", newID, f.keys.Keyring.PrimaryID(), oldID)
		}
		if pending, err := f.keys.Pending(ctx); err != nil || pending != 7 {
			t.Fatalf("pending = %d, %v; want 7", pending, err)
		}

		var progress [][2]int64
		res, err := f.keys.Reencrypt(ctx, testActor, broker.ReencryptOptions{
			BatchSize: 2, MaxBatches: 2,
			Progress: func(done, total int64) { progress = append(progress, [2]int64{done, total}) },
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.Reencrypted != 4 || res.Remaining != 3 || res.KeyID != newID {
			t.Fatalf("first run = %+v", res)
		}
		if !slices.Equal(progress, [][2]int64{{2, 7}, {4, 7}}) {
			t.Fatalf("progress = %v", progress)
		}
		if got := f.check(t); got[oldID] != 3 || got[newID] != 4 {
			t.Fatalf("after the interrupted run: %v", got)
		}

		res, err = f.keys.Reencrypt(ctx, testActor, broker.ReencryptOptions{BatchSize: 2})
		if err != nil || res.Reencrypted != 3 || res.Remaining != 0 {
			t.Fatalf("resumed run = %+v, %v", res, err)
		}
		if got := f.check(t); got[newID] != 7 {
			t.Fatalf("after the resumed run: %v", got)
		}
		res, err = f.keys.Reencrypt(ctx, testActor, broker.ReencryptOptions{})
		if err != nil || res.Reencrypted != 0 || res.Remaining != 0 {
			t.Fatalf("a run with nothing to do = %+v, %v", res, err)
		}
		if a := lastAudit(t, f.store); a.Action != "keys.reencrypt" || a.Outcome != storage.AuditSuccess || a.Target != newID {
			t.Fatalf("audit entry = %+v", a)
		}
	})
}

// TestKeysReencryptStopsCleanlyWhenCancelled cancels a run after two of its
// four batches: every row must be either re-encrypted (envelope and key
// column both under the new key) or untouched, and a later run must finish
// the rest.
func TestKeysReencryptStopsCleanlyWhenCancelled(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		f := newKeysFixture(t, db, 7)
		oldID := f.keys.Keyring.PrimaryID()
		newID, err := f.keys.Add(context.Background(), testActor)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		batches := 0
		res, err := f.keys.Reencrypt(ctx, testActor, broker.ReencryptOptions{
			BatchSize: 2,
			Progress: func(done, total int64) {
				if batches++; batches == 2 {
					cancel()
				}
			},
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if batches != 2 || res.Reencrypted != 4 {
			t.Fatalf("cancelled after %d batches having re-encrypted %d bodies, want 2 batches and 4 bodies", batches, res.Reencrypted)
		}
		if got := f.check(t); got[oldID] != 3 || got[newID] != 4 {
			t.Fatalf("after the cancelled run: %v, want 3 under %s and 4 under %s", got, oldID, newID)
		}
		if a := lastAudit(t, f.store); a.Action != "keys.reencrypt" || a.Outcome != storage.AuditFailure ||
			a.Details == nil || !strings.HasSuffix(*a.Details, "after 4 bodies") {
			t.Fatalf("the cancelled run left audit entry %+v, want a failed keys.reencrypt after 4 bodies", a)
		}

		res, err = f.keys.Reencrypt(context.Background(), testActor, broker.ReencryptOptions{BatchSize: 2})
		if err != nil || res.Reencrypted != 3 || res.Remaining != 0 {
			t.Fatalf("resumed run = %+v, %v; want 3 re-encrypted, none remaining", res, err)
		}
		if got := f.check(t); got[newID] != 7 {
			t.Fatalf("after the resumed run: %v", got)
		}
	})
}

func TestKeysRetire(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		f := newKeysFixture(t, db, 2)
		ctx := context.Background()
		oldID := f.keys.Keyring.PrimaryID()
		wantKind(t, f.keys.Retire(ctx, testActor, oldID), apperr.Conflict, "key_is_primary")
		wantKind(t, f.keys.Retire(ctx, testActor, "no-such-key"), apperr.NotFound, "key_not_found")
		newID, err := f.keys.Add(ctx, testActor)
		if err != nil {
			t.Fatal(err)
		}
		wantKind(t, f.keys.Retire(ctx, testActor, oldID), apperr.Conflict, "key_in_use")
		if a := lastAudit(t, f.store); a.Action != "keys.retire" || a.Outcome != storage.AuditFailure {
			t.Fatalf("audit entry = %+v", a)
		}
		if _, err := f.keys.Reencrypt(ctx, testActor, broker.ReencryptOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := f.keys.Retire(ctx, testActor, oldID); err != nil {
			t.Fatal(err)
		}
		onDisk, err := keyring.Load(f.keys.Path)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(onDisk.IDs(), []string{newID}) || !slices.Equal(f.keys.Keyring.IDs(), []string{newID}) {
			t.Fatalf("keys after retiring: file %v, memory %v", onDisk.IDs(), f.keys.Keyring.IDs())
		}
		f.check(t)
	})
}

func TestKeysAddChangesNothingWhenTheFileCannotBeWritten(t *testing.T) {
	f := newKeysFixture(t, storagetest.OpenSQLite(t), 0)
	before := f.keys.Keyring.IDs()
	f.keys.Path = filepath.Join(t.TempDir(), "missing", "keyring.json")
	if _, err := f.keys.Add(context.Background(), testActor); err == nil {
		t.Fatal("Add succeeded without a keyring file")
	}
	if !slices.Equal(f.keys.Keyring.IDs(), before) {
		t.Fatalf("keys in memory changed: %v → %v", before, f.keys.Keyring.IDs())
	}
}

func TestKeysUsageCountsBodiesUnderUnknownKeys(t *testing.T) {
	f := newKeysFixture(t, storagetest.OpenSQLite(t), 2)
	ctx := context.Background()
	other, err := keyring.Generate("elsewhere")
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := keyring.NewKeyring(other)
	if err != nil {
		t.Fatal(err)
	}
	env, err := foreign.Encrypt([]byte("x"), []byte("00000000-0000-4000-8000-000000000001"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.store.Messages.Insert(ctx, &storage.Message{
		MessageID: "00000000-0000-4000-8000-000000000001", ClientID: "p", SenderNumberHash: fmt.Sprintf("%064d", 0),
		SenderNumberMasked: "+49****00", BodyEncrypted: env, EncryptionKeyID: "elsewhere", PayloadHash: fmt.Sprintf("%064d", 1),
	}); err != nil {
		t.Fatal(err)
	}
	usage, unknown, err := f.keys.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(usage) != 1 || usage[0].Messages != 2 || !usage[0].Primary || unknown != 1 {
		t.Fatalf("usage = %+v, unknown = %d", usage, unknown)
	}
}
