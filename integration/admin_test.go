package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/msgbroker/caddy-msgbroker/storage"
)

// TestAdminCertificateLifecycle issues a certificate from a CSR over the
// admin API, uses it on the internal API, revokes it, sees it refused at
// the handshake and listed in the CRL, and finds every step audited with
// the admin and the remote address.
func TestAdminCertificateLifecycle(t *testing.T) {
	eachAdminDialect(t, func(t *testing.T, p *portalGateway) {
		admin, _ := p.login("admin@example.com")
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		gen := p.do(portalCall{method: "POST", path: "/admin/certificates/generate", token: admin,
			body: map[string]any{"client_id": "proxy-csr", "role": "proxy", "validity_days": 30, "csr": makeCSR(t, key)}}).
			want(t, http.StatusCreated, "")
		if _, has := gen.Body["private_key"]; has {
			t.Fatalf("a CSR-based answer carries a private key: %s", gen.Raw)
		}
		serial := gen.str("serial")
		cert := pairOf(t, gen.str("chain"), key)
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil || !leaf.PublicKey.(*ecdsa.PublicKey).Equal(&key.PublicKey) || leaf.Subject.CommonName != "proxy-csr" {
			t.Fatalf("the leaf does not carry the CSR's key for proxy-csr: %v", err)
		}
		if status, err := p.registerWith(cert); err != nil || status != http.StatusCreated {
			t.Fatalf("registering with the new certificate = %d, %v", status, err)
		}

		// Without a CSR the key comes back once.
		own := p.do(portalCall{method: "POST", path: "/admin/certificates/generate", token: admin,
			body: map[string]any{"client_id": "worker-1", "role": "worker"}}).want(t, http.StatusCreated, "")
		if !strings.Contains(own.str("private_key"), "PRIVATE KEY") {
			t.Fatalf("no private key without a CSR: %s", own.Raw)
		}

		p.do(portalCall{method: "POST", path: "/admin/certificates/revoke", token: admin,
			body: map[string]any{"serial": serial, "reason": "superseded-ish"}}).want(t, http.StatusBadRequest, "invalid_reason")
		p.do(portalCall{method: "POST", path: "/admin/certificates/revoke", token: admin,
			body: map[string]any{"serial": serial, "client_id": "proxy-csr", "reason": "keyCompromise"}}).want(t, http.StatusBadRequest, "missing_target")
		p.do(portalCall{method: "POST", path: "/admin/certificates/revoke", token: admin,
			body: map[string]any{"serial": serial, "reason": "keycompromise"}}).want(t, http.StatusBadRequest, "invalid_reason")
		rev := p.do(portalCall{method: "POST", path: "/admin/certificates/revoke", token: admin,
			body: map[string]any{"serial": strings.ToUpper(serial), "reason": "keyCompromise"}}).want(t, http.StatusOK, "")
		if items := rev.Body["revoked"].([]any); len(items) != 1 || items[0].(map[string]any)["revocation_reason"] != "keyCompromise" {
			t.Fatalf("revoke answer = %s", rev.Raw)
		}
		p.do(portalCall{method: "POST", path: "/admin/certificates/revoke", token: admin,
			body: map[string]any{"serial": serial, "reason": "keyCompromise"}}).want(t, http.StatusConflict, "already_revoked")
		if _, err := p.registerWith(cert); !isHandshakeRefusal(err) {
			t.Fatalf("the revoked certificate still gets a connection: %v", err)
		}

		// /admin/crl and /crl list the same entries.
		for _, raw := range [][]byte{p.getRaw("/admin/crl?format=pem", admin), p.getRaw("/crl?format=pem", "")} {
			if got := crlEntries(t, raw); !slices.Equal(got, []string{serial + " reason 1"}) {
				t.Fatalf("CRL entries = %v, want %s keyCompromise", got, serial)
			}
		}
		p.do(portalCall{method: "GET", path: "/admin/crl?format=xml", token: admin}).want(t, http.StatusBadRequest, "invalid_format")

		issues, revokes := p.auditRows("certificate.issue"), p.auditRows("certificate.revoke")
		if len(issues) != 2 || len(revokes) != 5 {
			t.Fatalf("audit rows: %d issues, %d revocations; want 2 and 5", len(issues), len(revokes))
		}
		for _, a := range append(issues, revokes...) {
			if a.Actor != "admin@example.com" || a.RemoteAddr != "127.0.0.1" {
				t.Fatalf("audit row %+v lacks the admin or the address", a)
			}
		}
		var outcomes []string
		for _, a := range slices.Backward(revokes) {
			outcomes = append(outcomes, a.Outcome)
		}
		if !slices.Equal(outcomes, []string{storage.AuditFailure, storage.AuditFailure, storage.AuditFailure, storage.AuditSuccess, storage.AuditFailure}) {
			t.Fatalf("revocation outcomes, oldest first = %v", outcomes)
		}
	})
}

// crlEntries parses a PEM CRL into "serial reason N" lines.
func crlEntries(t *testing.T, raw []byte) []string {
	t.Helper()
	b, _ := pem.Decode(raw)
	if b == nil || b.Type != "X509 CRL" {
		t.Fatalf("not a PEM CRL: %q", raw)
	}
	crl, err := x509.ParseRevocationList(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range crl.RevokedCertificateEntries {
		out = append(out, fmt.Sprintf("%x reason %d", e.SerialNumber, e.ReasonCode))
	}
	return out
}

func TestAdminCertificateListPagesAndFilters(t *testing.T) {
	p := startAdmin(t, "sqlite")
	admin, _ := p.login("admin@example.com")
	for i := range 5 {
		p.issue(fmt.Sprintf("proxy-%d", i), "proxy")
	}
	p.issue("proxy-0", "proxy")
	if _, err := p.services().Certificates.Revoke(context.Background(), adminActor, "proxy-1", "superseded"); err != nil {
		t.Fatal(err)
	}
	var serials []string
	next := "/admin/certificates?status=active&limit=2"
	for next != "" {
		page := p.do(portalCall{method: "GET", path: next, token: admin}).want(t, http.StatusOK, "")
		for _, it := range page.Body["items"].([]any) {
			serials = append(serials, it.(map[string]any)["client_id"].(string))
		}
		next = ""
		if c := page.str("next_cursor"); c != "" {
			next = "/admin/certificates?status=active&limit=2&cursor=" + c
		}
	}
	if want := []string{"proxy-0", "proxy-4", "proxy-3", "proxy-2", "proxy-0"}; !slices.Equal(serials, want) {
		t.Fatalf("active certificates, newest first = %v, want %v", serials, want)
	}
	one := p.do(portalCall{method: "GET", path: "/admin/certificates?client_id=proxy-0&status=active", token: admin}).want(t, http.StatusOK, "")
	if n := len(one.Body["items"].([]any)); n != 2 {
		t.Fatalf("proxy-0 has %d active certificates, want 2", n)
	}
	revoked := p.do(portalCall{method: "GET", path: "/admin/certificates?status=revoked", token: admin}).want(t, http.StatusOK, "")
	if items := revoked.Body["items"].([]any); len(items) != 1 || items[0].(map[string]any)["client_id"] != "proxy-1" {
		t.Fatalf("revoked = %s", revoked.Raw)
	}
	soon := p.do(portalCall{method: "GET", path: "/admin/certificates?expiring_within=30d", token: admin}).want(t, http.StatusOK, "")
	if n := len(soon.Body["items"].([]any)); n != 0 {
		t.Fatalf("%d certificates of 365 days expire within 30 days", n)
	}
	all := p.do(portalCall{method: "GET", path: "/admin/certificates?expiring_within=400d", token: admin}).want(t, http.StatusOK, "")
	if n := len(all.Body["items"].([]any)); n != 5 {
		t.Fatalf("%d active certificates expire within 400 days, want 5", n)
	}
	first := p.do(portalCall{method: "GET", path: "/admin/certificates?limit=1", token: admin}).want(t, http.StatusOK, "")
	cursor := first.str("next_cursor")
	for _, bad := range []string{"x", cursor[:len(cursor)-2] + "AA", "%00"} {
		p.do(portalCall{method: "GET", path: "/admin/certificates?limit=1&cursor=" + bad, token: admin}).want(t, http.StatusBadRequest, "invalid_cursor")
	}
	// A cursor is bound to its filters.
	p.do(portalCall{method: "GET", path: "/admin/certificates?limit=2&cursor=" + cursor, token: admin}).want(t, http.StatusBadRequest, "invalid_cursor")
	for q, code := range map[string]string{"status=gone": "invalid_status", "client_id=a/b": "invalid_client_id",
		"expiring_within=-1h": "invalid_expiring_within", "expiring_within=soon": "invalid_expiring_within", "limit=0": "invalid_limit"} {
		p.do(portalCall{method: "GET", path: "/admin/certificates?" + q, token: admin}).want(t, http.StatusBadRequest, code)
	}
}

// TestAdminRefusesWeakAndForgedCSRs: each refusal has its code, and the
// accepted key types are accepted.
func TestAdminRefusesWeakAndForgedCSRs(t *testing.T) {
	p := startAdmin(t, "sqlite")
	admin, _ := p.login("admin@example.com")
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	forged := makeCSR(t, p384)
	b, _ := pem.Decode([]byte(forged))
	b.Bytes[len(b.Bytes)-5] ^= 0xff // inside the signature
	keyDER, _ := x509.MarshalPKCS8PrivateKey(p384)
	cases := []struct {
		name, csr string
		status    int
		code      string
	}{
		{"RSA 1024", makeCSR(t, rsa1024), http.StatusBadRequest, "csr_key_rejected"},
		{"ECDSA P-224", "", http.StatusBadRequest, "csr_key_rejected"},
		{"forged signature", string(pem.EncodeToMemory(b)), http.StatusBadRequest, "csr_bad_signature"},
		{"not PEM", "hello", http.StatusBadRequest, "invalid_csr"},
		{"a private key", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})), http.StatusBadRequest, "invalid_csr"},
		{"RSA 2048", makeCSR(t, rsa2048), http.StatusCreated, ""},
		{"ECDSA P-384", makeCSR(t, p384), http.StatusCreated, ""},
		{"Ed25519", makeCSR(t, ed), http.StatusCreated, ""},
	}
	if der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, p224); err == nil {
		cases[1].csr = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	} else {
		t.Fatalf("making a P-224 CSR: %v", err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := p.do(portalCall{method: "POST", path: "/admin/certificates/generate", token: admin,
				body: map[string]any{"client_id": "proxy-x", "role": "proxy", "csr": tc.csr}}).want(t, tc.status, tc.code)
			if _, has := a.Body["private_key"]; has {
				t.Fatal("a private key in the answer to a CSR")
			}
		})
	}
}
