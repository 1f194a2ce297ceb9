package integration

import (
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s holds no PEM", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// TestClientCertificateOutlivesCaddysIntermediate issues a 365-day
// certificate, forces the pki CA to renew its (7-day) intermediate, and
// checks the certificate still works: client certificates chain to the
// broker's own long-lived issuing intermediate, not to Caddy's.
func TestClientCertificateOutlivesCaddysIntermediate(t *testing.T) {
	g := startGateway(t, "sqlite", "")
	issuedAt := time.Now()
	cert, _ := g.issue("proxy-long", "proxy")
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if got := leaf.NotAfter.Sub(issuedAt); got < 365*24*time.Hour-time.Minute || got > 365*24*time.Hour+time.Minute {
		t.Fatalf("a 365-day certificate is valid for %s from issuance", got)
	}

	caDir := filepath.Join(g.srv.StorageDir, "pki", "authorities", "local")
	before := readCert(t, filepath.Join(caDir, "intermediate.crt"))
	if !before.NotAfter.Before(leaf.NotAfter) {
		t.Fatalf("Caddy's intermediate (until %s) outlives the leaf: the test would prove nothing", before.NotAfter)
	}
	// Force a renewal: without an intermediate in storage the CA makes a new
	// one when the config is loaded again.
	for _, name := range []string{"intermediate.crt", "intermediate.key"} {
		if err := os.Remove(filepath.Join(caDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.srv.Reload(g.caddyfile); err != nil {
		t.Fatalf("reload: %v", err)
	}
	g.waitForServerCertificate()
	after := readCert(t, filepath.Join(caDir, "intermediate.crt"))
	if after.SerialNumber.Cmp(before.SerialNumber) == 0 {
		t.Fatal("the pki intermediate was not renewed")
	}

	// The old leaf, presented with the chain it was issued with, still works.
	r := g.call(g.client(&cert), "POST", "/internal/messages/register", registerBody("", "+4915200000010", "after renewal"))
	if r.Status != http.StatusCreated {
		t.Fatalf("after the intermediate renewal = %d %s", r.Status, r.Raw)
	}
	// And it verifies against the root for its whole life.
	roots := x509.NewCertPool()
	roots.AddCert(readCert(t, filepath.Join(caDir, "root.crt")))
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		c, _ := x509.ParseCertificate(der)
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
		CurrentTime: issuedAt.Add(364 * 24 * time.Hour), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("the leaf does not verify on day 364: %v", err)
	}
}
