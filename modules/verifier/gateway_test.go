package verifier_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/internal/testcaddy"
	"github.com/msgbroker/caddy-msgbroker/modules/msgbroker"
)

// TestGatewayVerifierFollowsTheRegistry provisions the verifier in a real
// gateway (`verifier msgbroker` in client_auth) and shows that it reaches
// the app's certificate registry: a certificate the broker issued opens a
// connection until it is revoked, then it is refused.
func TestGatewayVerifierFollowsTheRegistry(t *testing.T) {
	port := testcaddy.FreePort(t)
	dir := t.TempDir()
	srv := testcaddy.Start(t, fmt.Sprintf(`{
	msgbroker {
		database sqlite %s
		dev_keys %s
	}
}

https://localhost:%d {
	tls internal {
		client_auth {
			mode require_and_verify
			trust_pool msgbroker
			verifier msgbroker
		}
	}
	respond "ok"
}
`, filepath.Join(dir, "broker.db"), filepath.Join(dir, "secrets"), port))
	app, err := caddy.ActiveContext().App(msgbroker.AppName)
	if err != nil {
		t.Fatal(err)
	}
	svcs, err := app.(*msgbroker.App).Services(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, actor := context.Background(), broker.Actor{Name: "verifier-test"}
	issued, _, err := svcs.Certificates.Issue(ctx, actor, broker.IssueRequest{ClientID: "proxy-1", Role: "proxy"})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(issued.ChainPEM, issued.PrivateKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	rootPEM, err := os.ReadFile(filepath.Join(srv.StorageDir, "pki", "authorities", "local", "root.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(rootPEM)

	if err := handshake(port, roots, cert); err != nil {
		t.Fatalf("an active certificate was refused: %v", err)
	}
	if _, err := svcs.Certificates.Revoke(ctx, actor, "proxy-1", "key_compromise"); err != nil {
		t.Fatal(err)
	}
	if err := handshake(port, roots, cert); err == nil {
		t.Fatal("a revoked certificate opened a connection")
	}
}

// handshake connects presenting cert and reads the first byte of the
// answer: TLS 1.3 reports a refused client certificate on the first read.
func handshake(port int, roots *x509.CertPool, cert tls.Certificate) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{
			RootCAs: roots, ServerName: "localhost", Certificates: []tls.Certificate{cert},
		})
		if err == nil {
			_, _ = conn.Write([]byte("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"))
			_, err = conn.Read(make([]byte, 1))
			conn.Close()
			return err
		}
		// Caddy obtains the listener's own certificate in the background
		// after start.
		if time.Now().After(deadline) || err.Error() != "remote error: tls: internal error" {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}
