package certregistry

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/msgbroker/caddy-msgbroker/internal/clientca"
	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

// leaf makes a real certificate with the given serial and CN.
func leaf(t *testing.T, serial int64, cn string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

type fixture struct {
	t     *testing.T
	repo  *storage.ClientRepo
	reg   *Registry
	ctx   context.Context
	clock time.Time
}

func newFixture(t *testing.T) *fixture {
	repo := storage.New(storagetest.OpenSQLite(t)).Clients
	f := &fixture{t: t, repo: repo, reg: NewRegistry(repo, zap.NewNop()), ctx: context.Background(), clock: time.Now()}
	f.reg.now = func() time.Time { return f.clock }
	return f
}

// register stores cert as issued, with updated_at written by a clock off
// by skew.
func (f *fixture) register(cert *x509.Certificate, skew time.Duration) {
	f.t.Helper()
	stamp := time.Now().Add(skew)
	err := f.repo.Insert(f.ctx, &storage.Client{
		ClientID: cert.Subject.CommonName, SerialNumber: clientca.SerialHex(cert.SerialNumber),
		FingerprintSHA256: clientca.Fingerprint(cert), Role: storage.ClientRoleProxy, Status: storage.ClientActive,
		Subject: "CN=" + cert.Subject.CommonName, IssuedAt: cert.NotBefore, NotAfter: cert.NotAfter, CreatedBy: "test",
		CreatedAt: stamp, UpdatedAt: stamp,
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) revoke(cert *x509.Certificate) {
	f.t.Helper()
	if err := f.repo.Revoke(f.ctx, clientca.SerialHex(cert.SerialNumber), "test", time.Now()); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) refresh() {
	f.t.Helper()
	if err := f.reg.Refresh(f.ctx); err != nil {
		f.t.Fatal(err)
	}
}

func TestCheckRefusesUnknownRevokedAndForeignCertificates(t *testing.T) {
	f := newFixture(t)
	good, revoked := leaf(t, 1, "proxy-a"), leaf(t, 2, "proxy-b")
	f.register(good, 0)
	f.register(revoked, 0)
	if _, err := f.reg.Check(good); !errors.Is(err, ErrNotReady) {
		t.Fatalf("before loading: %v", err)
	}
	f.revoke(revoked)
	f.refresh()
	cases := map[string]struct {
		cert *x509.Certificate
		want error
	}{
		"active":                 {good, nil},
		"revoked":                {revoked, ErrRevoked},
		"unknown serial":         {leaf(t, 3, "proxy-a"), ErrUnknown},
		"same serial, other key": {leaf(t, 1, "proxy-a"), ErrMismatch},
		"same serial, other CN":  {leaf(t, 1, "proxy-z"), ErrMismatch},
	}
	for name, tc := range cases {
		if _, err := f.reg.Check(tc.cert); !errors.Is(err, tc.want) {
			t.Errorf("%s: Check = %v, want %v", name, err, tc.want)
		}
	}
	f.clock = good.NotAfter.Add(time.Second)
	if _, err := f.reg.Check(good); !errors.Is(err, ErrExpired) {
		t.Errorf("after NotAfter: %v, want ErrExpired", err)
	}
}

// TestRevocationIsSeenDespiteAFastClockElsewhere: a node whose clock runs
// an hour fast wrote one row, which moves the poll cursor into the future;
// a revocation written by a correct clock must still take effect, at once
// when announced and within fullReloadEvery when only polled.
func TestRevocationIsSeenDespiteAFastClockElsewhere(t *testing.T) {
	f := newFixture(t)
	fast, victim, other := leaf(t, 10, "proxy-fast"), leaf(t, 11, "proxy-v"), leaf(t, 12, "proxy-o")
	f.register(fast, time.Hour)
	f.register(victim, 0)
	f.register(other, 0)
	f.refresh()

	f.revoke(victim)
	if err := f.reg.RefreshSerial(f.ctx, clientca.SerialHex(victim.SerialNumber)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.Check(victim); !errors.Is(err, ErrRevoked) {
		t.Fatalf("announced revocation not applied: %v", err)
	}

	f.revoke(other)
	f.refresh() // incremental: the skewed cursor hides the change
	f.clock = f.clock.Add(fullReloadEvery)
	f.refresh() // full reload
	if _, err := f.reg.Check(other); !errors.Is(err, ErrRevoked) {
		t.Fatalf("polled revocation not applied after a full reload: %v", err)
	}
}

// TestOlderSnapshotDoesNotUndoARevocation applies a stale row after the
// revoked one: the newer state must win.
func TestOlderSnapshotDoesNotUndoARevocation(t *testing.T) {
	f := newFixture(t)
	cert := leaf(t, 20, "proxy-s")
	f.register(cert, 0)
	f.refresh()
	stale, err := f.repo.GetBySerial(f.ctx, clientca.SerialHex(cert.SerialNumber))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	f.revoke(cert)
	if err := f.reg.RefreshSerial(f.ctx, clientca.SerialHex(cert.SerialNumber)); err != nil {
		t.Fatal(err)
	}
	f.reg.mu.Lock()
	f.reg.apply(*stale)
	f.reg.mu.Unlock()
	if _, err := f.reg.Check(cert); !errors.Is(err, ErrRevoked) {
		t.Fatalf("a stale snapshot re-activated a revoked certificate: %v", err)
	}
}

func TestCheckFreshLooksUpUnknownSerials(t *testing.T) {
	f := newFixture(t)
	f.refresh()
	cert := leaf(t, 30, "proxy-new")
	f.register(cert, 0)
	if _, err := f.reg.CheckFresh(f.ctx, cert); err != nil {
		t.Fatalf("a certificate issued after the last refresh: %v", err)
	}
	// A second miss within the interval is not looked up.
	late := leaf(t, 31, "proxy-late")
	f.register(late, 0)
	if _, err := f.reg.CheckFresh(f.ctx, late); !errors.Is(err, ErrUnknown) {
		t.Fatalf("lookups are not rate-limited: %v", err)
	}
}
