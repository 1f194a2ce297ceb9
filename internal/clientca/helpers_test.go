package clientca

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"net/url"
	"path"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
)

const day = 24 * time.Hour

// testClock is a settable clock for Config.Now.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *testClock { return &testClock{t: t} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *testClock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

func newStorage(t testing.TB) *certmagic.FileStorage {
	t.Helper()
	return &certmagic.FileStorage{Path: t.TempDir()}
}

// writeCaddyRoot creates a root the way Caddy's pki app does (caddypki
// generateRoot with smallstep's DefaultRootTemplate: self-signed ECDSA P-256,
// CA with MaxPathLen 1, KeyUsage CertSign|CRLSign, no EKU) and stores it at
// pki/authorities/<id>/root.crt and root.key with the same encodings.
func writeCaddyRoot(t testing.TB, st certmagic.Storage, caID string, notBefore time.Time, lifetime time.Duration) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	notBefore = notBefore.Truncate(time.Second)
	name := pkix.Name{CommonName: "Caddy Local Authority - " + notBefore.Format("2006") + " ECC Root"}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(notBefore.UnixNano()),
		Subject:               name,
		Issuer:                name,
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(lifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
	}
	return signAndStore(t, st, caID, "root", tmpl, tmpl, key, key), key
}

// signAndStore signs tmpl for key with parent/parentKey and stores the
// certificate and key as pki/authorities/<caID>/<name>.crt and .key, the
// way Caddy's pki app keeps them.
func signAndStore(t testing.TB, st certmagic.Storage, caID, name string, tmpl, parent *x509.Certificate, key, parentKey crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := certmagic.PEMEncodePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	prefix := path.Join("pki", "authorities", caID)
	if err := st.Store(ctx, path.Join(prefix, name+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})); err != nil {
		t.Fatal(err)
	}
	if err := st.Store(ctx, path.Join(prefix, name+".key"), keyPEM); err != nil {
		t.Fatal(err)
	}
	return cert
}

// writeCaddyIntermediate stores a Caddy-style short-lived intermediate
// (DefaultIntermediateTemplate: CA, MaxPathLen 0, no EKU) at
// pki/authorities/<id>/intermediate.crt and .key, as Caddy renews it.
func writeCaddyIntermediate(t testing.TB, st certmagic.Storage, caID string, root *x509.Certificate, rootKey crypto.Signer, notBefore time.Time, lifetime time.Duration) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := randomSerial()
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "Caddy Local Authority - ECC Intermediate"},
		NotBefore:             notBefore.Truncate(time.Second),
		NotAfter:              notBefore.Truncate(time.Second).Add(lifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	return signAndStore(t, st, caID, "intermediate", tmpl, root, key, rootKey)
}

// fixture is a storage with a Caddy-style root and an issuer on a test clock.
type fixture struct {
	st      *certmagic.FileStorage
	clock   *testClock
	root    *x509.Certificate
	rootKey crypto.Signer
	issuer  *Issuer
}

// newFixture creates storage with a 10-year root made an hour before the
// clock's start (so that backdating is never clamped) and an issuer on it.
func newFixture(t testing.TB) *fixture {
	t.Helper()
	start := time.Now().UTC()
	st := newStorage(t)
	root, rootKey := writeCaddyRoot(t, st, "local", start.Add(-time.Hour), 10*365*day)
	f := &fixture{st: st, clock: newClock(start), root: root, rootKey: rootKey}
	f.issuer = f.newIssuer(t)
	return f
}

func (f *fixture) newIssuer(t testing.TB) *Issuer {
	t.Helper()
	iss, err := New(Config{CAID: "local", Name: "Test CA", Storage: f.st, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

func (f *fixture) issue(t testing.TB, req Request) *Issued {
	t.Helper()
	iss, err := f.issuer.Issue(context.Background(), req)
	if err != nil {
		t.Fatalf("Issue(%s, %s): %v", req.ClientID, req.Role, err)
	}
	return iss
}

// parseCerts decodes every CERTIFICATE block of pemBytes.
func parseCerts(t testing.TB, pemBytes []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, pemBytes = pem.Decode(pemBytes)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			t.Fatalf("unexpected PEM block %q in chain", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

// verifyChain verifies a client's chain file (leaf first) against root alone
// at time at, for client authentication: what Caddy's
// `trust_pool pki_root` listener does with what the client presents.
func verifyChain(t testing.TB, chainPEM []byte, root *x509.Certificate, at time.Time) error {
	t.Helper()
	certs := parseCerts(t, chainPEM)
	if len(certs) == 0 {
		t.Fatal("empty chain")
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	inters := x509.NewCertPool()
	for _, c := range certs[1:] {
		inters.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inters,
		CurrentTime:   at,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	return err
}

// makeCSR makes a PEM CSR for key whose subject and extensions ask for far
// more than a client may have, to show Issue ignores them.
func makeCSR(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	bc, err := asn1.Marshal(struct{ IsCA bool }{true})
	if err != nil {
		t.Fatal(err)
	}
	workerURI, err := url.Parse(RoleURIPrefix + RoleWorker)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.CertificateRequest{
		Subject: pkix.Name{
			CommonName:         "admin",
			OrganizationalUnit: []string{"worker", "root"},
			Organization:       []string{"Evil Corp"},
		},
		DNSNames: []string{"broker.example.com"},
		URIs:     []*url.URL{workerURI},
		ExtraExtensions: []pkix.Extension{
			{Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Critical: true, Value: bc}, // basicConstraints CA=true
		},
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}
