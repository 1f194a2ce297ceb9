package verifier

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

	"github.com/msgbroker/caddy-msgbroker/internal/certregistry"
	"github.com/msgbroker/caddy-msgbroker/internal/clientca"
	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

func testLeaf(t *testing.T, serial int64, cn string) *x509.Certificate {
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

// registryWith returns a loaded registry over a fresh SQLite database
// holding each certificate with the given status and NotAfter.
func registryWith(t *testing.T, rows map[*x509.Certificate]storage.Client) *certregistry.Registry {
	t.Helper()
	repo := storage.New(storagetest.OpenSQLite(t)).Clients
	ctx := context.Background()
	for cert, row := range rows {
		now, revoke := time.Now(), row.Status == storage.ClientRevoked
		row.Status = storage.ClientActive
		row.ClientID, row.SerialNumber = cert.Subject.CommonName, clientca.SerialHex(cert.SerialNumber)
		row.FingerprintSHA256, row.Role, row.Subject = clientca.Fingerprint(cert), storage.ClientRoleProxy, "CN="+cert.Subject.CommonName
		row.IssuedAt, row.CreatedBy, row.CreatedAt, row.UpdatedAt = cert.NotBefore, "test", now, now
		if err := repo.Insert(ctx, &row); err != nil {
			t.Fatal(err)
		}
		if revoke {
			if err := repo.Revoke(ctx, row.SerialNumber, "test", now); err != nil {
				t.Fatal(err)
			}
		}
	}
	reg := certregistry.NewRegistry(repo, zap.NewNop())
	if err := reg.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	return reg
}

func verify(v *Verifier, cert *x509.Certificate) error {
	return v.VerifyClientCertificate([][]byte{cert.Raw}, [][]*x509.Certificate{{cert}})
}

// TestHandshakeRefusedWhileTheRegistryIsUnavailable: when the app cannot
// give its registry (database down at start), the handshake must fail
// closed, never accept a certificate it could not check.
func TestHandshakeRefusedWhileTheRegistryIsUnavailable(t *testing.T) {
	cert := testLeaf(t, 1, "proxy-a")
	v := &Verifier{registry: func(context.Context) (*certregistry.Registry, error) {
		return nil, errors.New("database unreachable")
	}}
	err := verify(v, cert)
	refusal, ok := errors.AsType[*Refusal](err)
	if !ok || refusal.Reason != ReasonRegistryUnavailable || refusal.Leaf != cert {
		t.Fatalf("VerifyClientCertificate = %v, want a registry_unavailable refusal of the leaf", err)
	}
	unloaded := certregistry.NewRegistry(storage.New(storagetest.OpenSQLite(t)).Clients, zap.NewNop())
	v.registry = func(context.Context) (*certregistry.Registry, error) { return unloaded, nil }
	if refusal, ok := errors.AsType[*Refusal](verify(v, cert)); !ok || refusal.Reason != ReasonRegistryUnavailable {
		t.Fatalf("a registry never loaded: %v, want registry_unavailable", refusal)
	}
}

func TestVerifierAcceptsOnlyActiveRegisteredCertificates(t *testing.T) {
	active, revoked, expired, stranger := testLeaf(t, 1, "proxy-a"), testLeaf(t, 2, "proxy-r"), testLeaf(t, 3, "proxy-e"), testLeaf(t, 4, "proxy-u")
	reg := registryWith(t, map[*x509.Certificate]storage.Client{
		active:  {Status: storage.ClientActive, NotAfter: active.NotAfter},
		revoked: {Status: storage.ClientRevoked, NotAfter: revoked.NotAfter},
		expired: {Status: storage.ClientActive, NotAfter: time.Now().Add(-time.Second)},
	})
	v := &Verifier{registry: func(context.Context) (*certregistry.Registry, error) { return reg, nil }}
	if err := verify(v, active); err != nil {
		t.Fatalf("active certificate refused: %v", err)
	}
	cases := map[string]struct {
		cert *x509.Certificate
		want string
	}{
		"revoked":                {revoked, ReasonRevoked},
		"expired in the table":   {expired, ReasonExpired},
		"never issued":           {stranger, ReasonUnknownSerial},
		"same serial, other key": {testLeaf(t, 1, "proxy-a"), ReasonMismatch},
	}
	for name, tc := range cases {
		err := verify(v, tc.cert)
		refusal, ok := errors.AsType[*Refusal](err)
		if !ok || refusal.Reason != tc.want || refusal.Leaf != tc.cert {
			t.Errorf("%s: %v, want a %s refusal of the leaf", name, err, tc.want)
		}
	}
}
