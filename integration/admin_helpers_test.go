package integration

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/msgbroker/caddy-msgbroker/internal/testcaddy"
	"github.com/msgbroker/caddy-msgbroker/storage"
)

// productSite is one HTTPS site with every route of the product that is
// not the internal API, composed as Caddyfile.example composes them.
func productSite(port int) string {
	return fmt.Sprintf(`https://localhost:%d {
	tls internal
	handle /health {
		msgbroker_health
	}
	handle /crl {
		msgbroker_crl
	}
	handle /api {
		msgbroker_device
	}
	@portal path /portal /portal/*
	handle @portal {
		msgbroker_portal
		respond 404
	}
	handle /admin/* {
		msgbroker_admin
	}
	@docs path /docs /docs/* /redoc /openapi.json /openapi.yaml
	handle @docs {
		msgbroker_docs
	}
	respond 404
}
`, port)
}

// startAdmin starts a gateway on dialect serving productSite, with the
// cheapest bcrypt cost, and an admin account admin@example.com.
func startAdmin(t *testing.T, dialect string) *portalGateway {
	t.Helper()
	port := testcaddy.FreePort(t)
	g := startConfigured(t, &gateway{sites: productSite(port)}, databaseConfig(t, dialect), "login {\n\t\t\tbcrypt_cost 4\n\t\t\thashes_per_second -1\n\t\t\tfailure_delay off\n\t\t}")
	p := &portalGateway{gateway: g, port: port, client: g.client(nil)}
	p.createUser("admin@example.com", storage.RoleAdmin, "")
	return p
}

func eachAdminDialect(t *testing.T, fn func(t *testing.T, p *portalGateway)) {
	for _, dialect := range []string{"sqlite", "mysql"} {
		t.Run(dialect, func(t *testing.T) { fn(t, startAdmin(t, dialect)) })
	}
}

// makeCSR returns a PEM certificate request signed by key.
func makeCSR(t *testing.T, key crypto.Signer) string {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "ignored"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

// pairOf is the TLS identity of an issued chain and its key.
func pairOf(t *testing.T, chainPEM string, key crypto.Signer) tls.Certificate {
	t.Helper()
	var cert tls.Certificate
	rest := []byte(chainPEM)
	for {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		cert.Certificate = append(cert.Certificate, b.Bytes)
	}
	if len(cert.Certificate) != 2 {
		t.Fatalf("the chain has %d certificates, want leaf and intermediate", len(cert.Certificate))
	}
	cert.PrivateKey = key
	return cert
}

// auditRows returns the audit rows of action, newest first.
func (p *portalGateway) auditRows(action string) []storage.AuditEntry {
	p.t.Helper()
	rows, err := p.services().Store.Audit.List(context.Background(), storage.AuditFilter{Action: action})
	if err != nil {
		p.t.Fatal(err)
	}
	return rows
}

// userID looks up the id of an account.
func (p *portalGateway) userID(email string) string {
	p.t.Helper()
	u, err := p.services().Users.Lookup(context.Background(), email)
	if err != nil {
		p.t.Fatal(err)
	}
	return strconv.FormatInt(u.ID, 10)
}

// registerWith registers one message over mutual TLS with cert and returns
// the status, or 0 and the error when the handshake is refused.
func (p *portalGateway) registerWith(cert tls.Certificate) (int, error) {
	resp, err := p.send(p.gateway.client(&cert), http.MethodPost, "/internal/messages/register",
		map[string]any{"sender_number": "+4915200000000", "message_body": "hello"})
	return resp.Status, err
}

// isHandshakeRefusal reports whether err is how a client sees the server
// refuse its certificate. In TLS 1.3 the client's side of the handshake is
// done before the server checks its certificate, so the request is written
// while the server's alert and close are on their way: depending on which
// comes first the client reads the alert, or its write fails (reset, or
// broken pipe when the close came before the write; seen once in CI).
func isHandshakeRefusal(err error) bool {
	if err == nil {
		return false
	}
	for _, sign := range []string{"remote error: tls", "connection reset", "broken pipe"} {
		if strings.Contains(err.Error(), sign) {
			return true
		}
	}
	return false
}

// getRaw GETs path on the product site with token (none when "") and
// returns the body of a 200.
func (p *portalGateway) getRaw(path, token string) []byte {
	p.t.Helper()
	req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("https://localhost:%d%s", p.port, path), nil)
	if err != nil {
		p.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		p.t.Fatalf("GET %s = %d %s, %v", path, resp.StatusCode, body, err)
	}
	return body
}
