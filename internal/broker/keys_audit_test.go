package broker_test

import (
	"context"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

// TestKeysAddAuditsTheNewKeyID: the audit entry of a key added names that
// key, not the keyring file.
func TestKeysAddAuditsTheNewKeyID(t *testing.T) {
	f := newKeysFixture(t, storagetest.OpenSQLite(t), 0)
	id, err := f.keys.Add(context.Background(), testActor)
	if err != nil {
		t.Fatal(err)
	}
	if a := lastAudit(t, f.store); a.Action != "keys.add" || a.Outcome != storage.AuditSuccess || a.Target != id {
		t.Fatalf("audit entry = %+v, want a successful keys.add of %s", a, id)
	}
}

// TestKeysReencryptDefaultBatchIs500: a zero BatchSize means
// DefaultReencryptBatch bodies per batch, not the storage's default page
// of 50: one batch re-encrypts all 51 bodies.
func TestKeysReencryptDefaultBatchIs500(t *testing.T) {
	f := newKeysFixture(t, storagetest.OpenSQLite(t), storage.DefaultPageSize+1)
	ctx := context.Background()
	if _, err := f.keys.Add(ctx, testActor); err != nil {
		t.Fatal(err)
	}
	res, err := f.keys.Reencrypt(ctx, testActor, broker.ReencryptOptions{MaxBatches: 1})
	if err != nil || res.Reencrypted != storage.DefaultPageSize+1 || res.Remaining != 0 {
		t.Fatalf("one batch of the default size = %+v, %v; want all %d bodies re-encrypted", res, err, storage.DefaultPageSize+1)
	}
}

// TestKeysReencryptLogsAnAuditWriteItCannotMake: a run whose audit entry
// cannot be written still does its work and says so in the log; a run
// whose entry is written logs nothing.
func TestKeysReencryptLogsAnAuditWriteItCannotMake(t *testing.T) {
	db := storagetest.OpenSQLite(t)
	f := newKeysFixture(t, db, 2)
	core, logs := observer.New(zapcore.InfoLevel)
	f.keys.Logger = zap.New(core)
	ctx := context.Background()
	if _, err := f.keys.Add(ctx, testActor); err != nil {
		t.Fatal(err)
	}
	if _, err := f.keys.Reencrypt(ctx, testActor, broker.ReencryptOptions{MaxBatches: 1}); err != nil {
		t.Fatal(err)
	}
	if n := logs.Len(); n != 0 {
		t.Fatalf("audited runs logged %d entries: %v", n, logs.All())
	}

	if _, err := db.ExecContext(ctx, "DROP TABLE audit_log"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.keys.Add(ctx, testActor); err != nil {
		t.Fatal(err)
	}
	if logs.FilterMessage("audit log write failed").FilterField(zap.String("action", "keys.add")).Len() != 1 {
		t.Fatalf("a failed audit write of keys.add was not logged: %v", logs.All())
	}
	res, err := f.keys.Reencrypt(ctx, testActor, broker.ReencryptOptions{})
	if err != nil || res.Reencrypted != 2 {
		t.Fatalf("a run that cannot be audited = %+v, %v; want its work done", res, err)
	}
	if logs.FilterMessage("audit log write failed").FilterField(zap.String("action", "keys.reencrypt")).Len() != 1 {
		t.Fatalf("a failed audit write of keys.reencrypt was not logged: %v", logs.All())
	}
}

// TestKeysRetireNamesWhatBlocksIt: refusing to retire a key that still
// seals one body says so in the singular, and the failed attempt's audit
// entry carries the reason.
func TestKeysRetireNamesWhatBlocksIt(t *testing.T) {
	f := newKeysFixture(t, storagetest.OpenSQLite(t), 1)
	ctx := context.Background()
	oldID := f.keys.Keyring.PrimaryID()
	if _, err := f.keys.Add(ctx, testActor); err != nil {
		t.Fatal(err)
	}
	err := f.keys.Retire(ctx, testActor, oldID)
	wantKind(t, err, apperr.Conflict, "key_in_use")
	if !strings.Contains(err.Error(), "1 message body is still encrypted with key "+oldID) {
		t.Errorf("err = %v, want it to name the one body", err)
	}
	a := lastAudit(t, f.store)
	if a.Action != "keys.retire" || a.Outcome != storage.AuditFailure || a.Target != oldID ||
		a.Details == nil || !strings.HasPrefix(*a.Details, "key_in_use: 1 message body is") {
		t.Fatalf("audit entry = %+v, want a failed keys.retire of %s with its reason", a, oldID)
	}
}
