package broker_test

import (
	"context"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/storage"
)

// TestRevokeTellsAConcurrentRevocationFromAFailure: a certificate listed
// as active but revoked by someone else before this revocation's UPDATE
// (emulated by a trigger that makes the UPDATE change no row) is
// "already revoked"; an UPDATE that fails is an internal error, not that.
func TestRevokeTellsAConcurrentRevocationFromAFailure(t *testing.T) {
	for _, tc := range []struct {
		name, trigger string
		kind          apperr.Kind // 0: not an apperr
	}{
		{"revoked concurrently", "SELECT RAISE(IGNORE)", apperr.Conflict},
		{"update fails", "SELECT RAISE(ABORT, 'disk on fire')", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newCertsFixture(t, true)
			ctx := context.Background()
			row := f.issue(t, "proxy-1", storage.ClientRoleProxy)
			if _, err := f.store.DB.ExecContext(ctx, "CREATE TRIGGER interfere BEFORE UPDATE ON clients BEGIN "+tc.trigger+"; END"); err != nil {
				t.Fatal(err)
			}
			for name, revoke := range map[string]func() ([]storage.Client, error){
				"Revoke": func() ([]storage.Client, error) { return f.certs.Revoke(ctx, testActor, row.SerialNumber, "lost") },
				"RevokeNamed": func() ([]storage.Client, error) {
					return f.certs.RevokeNamed(ctx, testActor, broker.RevokeRequest{ClientID: "proxy-1", Reason: "keyCompromise"})
				},
			} {
				revoked, err := revoke()
				e, isApp := apperr.As(err)
				switch {
				case err == nil || len(revoked) != 0:
					t.Errorf("%s = %v, %v; want an error and nothing revoked", name, revoked, err)
				case tc.kind == 0 && isApp:
					t.Errorf("%s = %v, want an internal error", name, err)
				case tc.kind != 0 && (!isApp || e.Kind != tc.kind || e.Code != "already_revoked"):
					t.Errorf("%s = %v, want already_revoked", name, err)
				}
			}
		})
	}
}

// TestCertificatesLogAnAuditWriteTheyCannotMake: an issue whose audit entry
// cannot be written still succeeds and the failure is logged.
func TestCertificatesLogAnAuditWriteTheyCannotMake(t *testing.T) {
	f := newCertsFixture(t, true)
	core, logs := observer.New(zapcore.InfoLevel)
	f.certs.Logger = zap.New(core)
	ctx := context.Background()
	if _, err := f.store.DB.ExecContext(ctx, "DROP TABLE audit_log"); err != nil {
		t.Fatal(err)
	}
	f.issue(t, "proxy-1", storage.ClientRoleProxy)
	if logs.FilterMessage("audit log write failed").FilterField(zap.String("action", "certificate.issue")).Len() != 1 {
		t.Fatalf("the failed audit write was not logged: %v", logs.All())
	}
}

// TestRevokeNamedAuditsTheTargetAndOutcome: the entry names the serial or
// the client id given, with the reason or the refusal.
func TestRevokeNamedAuditsTheTargetAndOutcome(t *testing.T) {
	f := newCertsFixture(t, true)
	ctx := context.Background()
	row := f.issue(t, "proxy-1", storage.ClientRoleProxy)
	f.issue(t, "proxy-2", storage.ClientRoleProxy)
	for _, tc := range []struct {
		req                      broker.RevokeRequest
		target, outcome, details string
	}{
		{broker.RevokeRequest{Serial: " " + row.SerialNumber + " ", Reason: "superseded"}, row.SerialNumber, storage.AuditSuccess, "reason: superseded"},
		{broker.RevokeRequest{ClientID: "proxy-2", Reason: "keyCompromise"}, "proxy-2", storage.AuditSuccess, "reason: keyCompromise"},
		{broker.RevokeRequest{ClientID: "proxy-2", Reason: "keyCompromise"}, "proxy-2", storage.AuditFailure, "already_revoked: client proxy-2 has no active certificate"},
		{broker.RevokeRequest{Serial: row.SerialNumber, Reason: "superseded"}, row.SerialNumber, storage.AuditFailure,
			"already_revoked: certificate " + row.SerialNumber + " is already revoked"},
		{broker.RevokeRequest{Serial: "abc", Reason: "superseded"}, "abc", storage.AuditFailure, "certificate_not_found: no certificate with serial abc"},
		{broker.RevokeRequest{Serial: "xyz", Reason: "superseded"}, "xyz", storage.AuditFailure, "invalid_serial: serial must be hexadecimal, with or without colons"},
	} {
		_, err := f.certs.RevokeNamed(ctx, testActor, tc.req)
		if (err == nil) != (tc.outcome == storage.AuditSuccess) {
			t.Fatalf("RevokeNamed(%+v) = %v", tc.req, err)
		}
		a := lastAudit(t, f.store)
		if a.Action != "certificate.revoke" || a.Target != tc.target || a.Outcome != tc.outcome || a.Details == nil || *a.Details != tc.details {
			t.Errorf("RevokeNamed(%+v): audit entry %+v, want target %s, %s, %q", tc.req, a, tc.target, tc.outcome, tc.details)
		}
	}
}
