package integration

import (
	"context"
	"crypto/tls"
	"net/http"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/msgbroker/caddy-msgbroker/broker"
	"github.com/msgbroker/caddy-msgbroker/clientauth"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

// revokeBehindTheGatewaysBack revokes serial straight in the database, as
// another node or the CLI would, so this node only learns of it through its
// refresh paths.
func revokeBehindTheGatewaysBack(t *testing.T, g *gateway, serial string) {
	t.Helper()
	store, err := g.app.Store(context.Background())
	if err != nil {
		t.Fatal(err)
	}
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
	t.Logf("revocation enforced after %s (poll interval 200ms; the 1s target is measured by integration/loadtest)", took)
	handshakeRefused(t, g, &cert, "revoked elsewhere")
}

// TestRevocationAnnouncedThroughRedis polls only hourly, so the refusal
// can only come from the Redis announcement.
func TestRevocationAnnouncedThroughRedis(t *testing.T) {
	addr := storagetest.Redis(t)
	g := startGateway(t, "mysql", "redis "+addr+"\n\t\trevocation_poll_interval 1h")
	cert, serial := g.issue("proxy-redis", "proxy")
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
	if err := rdb.Publish(context.Background(), clientauth.Channel, serial).Err(); err != nil {
		t.Fatal(err)
	}
	took := waitRefused(t, g, &cert, 5*time.Second)
	t.Logf("revocation enforced %s after the announcement", took)
}

// TestCertificateIssuedElsewhereIsAcceptedAtOnce issues a certificate the
// way the CLI does — through the same service, but without telling this
// node — while this node polls only hourly: the handshake of the unknown
// serial refreshes the registry and succeeds.
func TestCertificateIssuedElsewhereIsAcceptedAtOnce(t *testing.T) {
	g := startGateway(t, "mysql", "revocation_poll_interval 1h")
	running, err := g.app.Certificates(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	elsewhere := &broker.Certificates{Store: running.Store, Issuer: running.Issuer}
	issued, _, err := elsewhere.Issue(context.Background(), adminActor, broker.IssueRequest{ClientID: "proxy-cli", Role: "proxy"})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(issued.ChainPEM, issued.PrivateKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if r := g.call(g.client(&pair), "POST", "/internal/messages/register", registerBody("", "+4915200000011", "x")); r.Status != http.StatusCreated {
		t.Fatalf("a certificate issued elsewhere = %d %s, want it accepted at once", r.Status, r.Raw)
	}
}
