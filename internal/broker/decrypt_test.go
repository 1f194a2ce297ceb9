package broker_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/internal/keyring"
	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

// TestDecryptBodyAuditsEveryAttempt: success, a body under a key the
// keyring lacks, no keyring at all — each is one message.decrypt entry
// naming the channel; and a body whose reading cannot be audited is not
// returned.
func TestDecryptBodyAuditsEveryAttempt(t *testing.T) {
	db := storagetest.OpenSQLite(t)
	f := newKeysFixture(t, db, 1)
	var id string
	for k := range f.bodies {
		id = k
	}
	m, err := f.store.Messages.GetByMessageID(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	actor := broker.Actor{Name: "root@example.com", RemoteAddr: "192.0.2.9"}
	ctx := context.Background()

	body, err := broker.DecryptBody(ctx, f.store, f.keys.Keyring, actor, "admin", m)
	if err != nil || body != f.bodies[id] {
		t.Fatalf("DecryptBody = %q, %v", body, err)
	}
	a := lastAudit(t, f.store)
	if a.Action != broker.ActionDecrypt || a.Target != id || a.Actor != actor.Name || a.RemoteAddr != actor.RemoteAddr ||
		a.Outcome != storage.AuditSuccess || a.Details == nil || *a.Details != "channel: admin" {
		t.Fatalf("audit entry of a decryption = %+v", a)
	}

	otherPath := filepath.Join(t.TempDir(), "other.json")
	other, _, err := keyring.CreateIfMissing(otherPath)
	if err != nil {
		t.Fatal(err)
	}
	body, err = broker.DecryptBody(ctx, f.store, other, actor, "portal", m)
	if err == nil || body != "" {
		t.Fatalf("DecryptBody with another keyring = %q, %v", body, err)
	}
	a = lastAudit(t, f.store)
	if a.Outcome != storage.AuditFailure || a.Details == nil ||
		*a.Details != "channel: portal; the body does not decrypt with the configured keyring (key "+m.EncryptionKeyID+")" {
		t.Fatalf("audit entry of a failed decryption = %+v (%v)", a, deref(a.Details))
	}

	_, err = broker.DecryptBody(ctx, f.store, nil, actor, "cli", m)
	wantKind(t, err, apperr.Unavailable, "keys_unavailable")
	if a = lastAudit(t, f.store); a.Outcome != storage.AuditFailure || !strings.HasPrefix(deref(a.Details), "channel: cli; keys_unavailable: ") {
		t.Fatalf("audit entry without keys = %+v (%v)", a, deref(a.Details))
	}

	if _, err := db.ExecContext(ctx, "DROP TABLE audit_log"); err != nil {
		t.Fatal(err)
	}
	body, err = broker.DecryptBody(ctx, f.store, f.keys.Keyring, actor, "admin", m)
	if err == nil || body != "" || !strings.Contains(err.Error(), "body is withheld") {
		t.Fatalf("DecryptBody without an audit log = %q, %v; want the body withheld", body, err)
	}
}
