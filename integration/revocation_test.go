package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/msgbroker/caddy-msgbroker/internal/apivalidate"
	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/internal/certregistry"
	"github.com/msgbroker/caddy-msgbroker/internal/clientca"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

// revokeBehindTheGatewaysBack revokes serial straight in the database, as
// another node or the CLI would, so this node only learns of it through its
// refresh paths.
func revokeBehindTheGatewaysBack(t *testing.T, g *gateway, serial string) {
	t.Helper()
	store := g.services().Store
	if err := store.Clients.Revoke(context.Background(), serial, "revoked elsewhere", time.Now()); err != nil {
		t.Fatal(err)
	}
}

// waitRefused polls until the handshake of cert is refused, and returns
// how long that took.
func waitRefused(t *testing.T, g *gateway, cert *tls.Certificate, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < limit {
		if r, err := g.send(g.client(cert), "POST", "/internal/messages/register", registerBody("", "+4915200000009", "x")); err != nil || r.Status == http.StatusForbidden {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the certificate was still accepted %s after its revocation", limit)
	return 0
}

// TestRevocationByAnotherNodeIsPickedUpByPolling revokes in the database
// only, telling no one; the gateway polls every 200ms here and must refuse
// the certificate at the handshake soon after (the wait is generous so a
// busy CI machine does not fail it; the time taken is logged).
func TestRevocationByAnotherNodeIsPickedUpByPolling(t *testing.T) {
	g := startGateway(t, "mysql", "")
	cert, serial := g.issue("proxy-poll", "proxy")
	if r := g.call(g.client(&cert), "POST", "/internal/messages/register", registerBody("", "+4915200000009", "x")); r.Status != http.StatusCreated {
		t.Fatalf("before revocation = %d %s", r.Status, r.Raw)
	}
	revokeBehindTheGatewaysBack(t, g, serial)
	took := waitRefused(t, g, &cert, 5*time.Second)
	t.Logf("revocation enforced after %s (poll interval 200ms)", took)
	handshakeRefused(t, g, &cert, "revoked elsewhere")
}

// TestRevocationAnnouncedThroughRedis polls only hourly, so the refusal
// can only come from the Redis announcement. The certificate is issued
// without an announcement (as the CLI on another machine without Redis
// would), so no message about it is still in flight when it is revoked:
// the gateway learns of it at its first handshake.
func TestRevocationAnnouncedThroughRedis(t *testing.T) {
	addr := storagetest.Redis(t)
	g := startGateway(t, "mysql", "redis "+addr+"\n\t\trevocation_poll_interval 1h")
	cert, serial := issueUnannounced(t, g, "proxy-redis")
	if r := g.call(g.client(&cert), "POST", "/internal/messages/register", registerBody("", "+4915200000009", "x")); r.Status != http.StatusCreated {
		t.Fatalf("before revocation = %d %s", r.Status, r.Raw)
	}
	revokeBehindTheGatewaysBack(t, g, serial)
	time.Sleep(300 * time.Millisecond)
	if r := g.call(g.client(&cert), "POST", "/internal/messages/register", registerBody("", "+4915200000009", "x")); r.Status != http.StatusCreated {
		t.Fatalf("without an announcement the hourly poll should not have seen the revocation yet: %d %s", r.Status, r.Raw)
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	if err := rdb.Publish(context.Background(), certregistry.Channel, serial).Err(); err != nil {
		t.Fatal(err)
	}
	took := waitRefused(t, g, &cert, 5*time.Second)
	t.Logf("revocation enforced %s after the announcement", took)
	handshakeRefused(t, g, &cert, "revoked and announced")
}

// TestCertificateIssuedElsewhereIsAcceptedAtOnce issues a certificate the
// way the CLI does — through the same service, but without telling this
// node — while this node polls only hourly: the handshake of the unknown
// serial refreshes the registry and succeeds.
func TestCertificateIssuedElsewhereIsAcceptedAtOnce(t *testing.T) {
	g := startGateway(t, "mysql", "revocation_poll_interval 1h")
	pair, _ := issueUnannounced(t, g, "proxy-cli")
	if r := g.call(g.client(&pair), "POST", "/internal/messages/register", registerBody("", "+4915200000011", "x")); r.Status != http.StatusCreated {
		t.Fatalf("a certificate issued elsewhere = %d %s, want it accepted at once", r.Status, r.Raw)
	}
}

// issueUnannounced issues a proxy certificate through the gateway's CA
// and database but not through its registry or Redis: as another node or
// the CLI does, telling no one.
func issueUnannounced(t *testing.T, g *gateway, clientID string) (tls.Certificate, string) {
	t.Helper()
	running := g.services().Certificates
	elsewhere := &broker.Certificates{Store: running.Store, Issuer: running.Issuer}
	issued, row, err := elsewhere.Issue(context.Background(), adminActor, broker.IssueRequest{ClientID: clientID, Role: "proxy"})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(issued.ChainPEM, issued.PrivateKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return pair, row.SerialNumber
}

// TestCRLListsRevokedCertificates fetches the published CRL after a
// revocation and checks it as another TLS terminator would: signed by the
// client-issuing intermediate, listing the serial, current.
func TestCRLListsRevokedCertificates(t *testing.T) {
	g := startGateway(t, "sqlite", "")
	kept, _ := g.issue("proxy-kept", "proxy")
	revokedCert, serial := g.issue("proxy-crl", "proxy")
	certs := g.services().Certificates
	if _, err := certs.Revoke(context.Background(), adminActor, serial, "keyCompromise"); err != nil {
		t.Fatal(err)
	}
	client := apivalidate.Client(t, &http.Client{Timeout: 10 * time.Second})
	resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/crl", g.httpPort))
	if err != nil {
		t.Fatal(err)
	}
	der, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/pkix-crl" {
		t.Fatalf("GET /crl = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatalf("parsing the CRL: %v", err)
	}
	issuer, err := x509.ParseCertificate(revokedCert.Certificate[1])
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(issuer); err != nil {
		t.Fatalf("the CRL is not signed by the client-issuing intermediate: %v", err)
	}
	if time.Until(crl.NextUpdate) < 23*time.Hour {
		t.Errorf("nextUpdate %s is too close", crl.NextUpdate)
	}
	listed := map[string]int{}
	for _, entry := range crl.RevokedCertificateEntries {
		listed[clientca.SerialHex(entry.SerialNumber)] = entry.ReasonCode
	}
	if code, ok := listed[serial]; !ok || code != 1 {
		t.Errorf("revoked serial %s listed=%t reason=%d, want listed with keyCompromise (1)", serial, ok, code)
	}
	keptLeaf, _ := x509.ParseCertificate(kept.Certificate[0])
	if _, ok := listed[clientca.SerialHex(keptLeaf.SerialNumber)]; ok {
		t.Error("an active certificate is listed")
	}
	pemResp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/crl?format=pem", g.httpPort))
	if err != nil {
		t.Fatal(err)
	}
	pemBody, _ := io.ReadAll(pemResp.Body)
	pemResp.Body.Close()
	if !strings.HasPrefix(string(pemBody), "-----BEGIN X509 CRL-----") {
		t.Errorf("format=pem answered %q", pemBody[:min(40, len(pemBody))])
	}
	bad, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/crl?format=txt", g.httpPort))
	if err != nil {
		t.Fatal(err)
	}
	bad.Body.Close()
	if bad.StatusCode != http.StatusBadRequest {
		t.Errorf("format=txt = %d, want 400", bad.StatusCode)
	}
}
