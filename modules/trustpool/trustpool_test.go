package trustpool_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/internal/testcaddy"
	"github.com/msgbroker/caddy-msgbroker/modules/msgbroker"
)

// listener starts a gateway whose internal API trusts pool, issues a proxy
// certificate, and returns it with a function that performs a handshake
// presenting the given certificates.
func listener(t *testing.T, pool string) (tls.Certificate, func(tls.Certificate) error) {
	t.Helper()
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
			%s
			verifier msgbroker
		}
	}
	respond "ok"
}
`, filepath.Join(dir, "broker.db"), filepath.Join(dir, "secrets"), port, pool))
	app, err := caddy.ActiveContext().App(msgbroker.AppName)
	if err != nil {
		t.Fatal(err)
	}
	svcs, err := app.(*msgbroker.App).Services(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	issued, _, err := svcs.Certificates.Issue(context.Background(), broker.Actor{Name: "trustpool-test"},
		broker.IssueRequest{ClientID: "proxy-1", Role: "proxy"})
	if err != nil {
		t.Fatal(err)
	}
	chain, err := tls.X509KeyPair(issued.ChainPEM, issued.PrivateKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	rootPEM, err := os.ReadFile(filepath.Join(srv.StorageDir, "pki", "authorities", "local", "root.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(rootPEM)
	handshake := func(cert tls.Certificate) error {
		deadline := time.Now().Add(10 * time.Second)
		for {
			conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{
				RootCAs: roots, ServerName: "localhost", Certificates: []tls.Certificate{cert},
			})
			if err == nil {
				// TLS 1.3 reports a refused client certificate on the
				// first read, not in Dial.
				_, _ = conn.Write([]byte("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"))
				_, err = conn.Read(make([]byte, 1))
				conn.Close()
				return err
			}
			// Caddy obtains the listener's own certificate in the
			// background after start.
			if time.Now().After(deadline) || err.Error() != "remote error: tls: internal error" {
				return err
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return chain, handshake
}

func leafOnly(chain tls.Certificate) tls.Certificate {
	leaf := chain
	leaf.Certificate = chain.Certificate[:1]
	return leaf
}

// TestLeafAloneAndChainBothVerify checks that with `trust_pool msgbroker` a
// client presenting only its certificate is accepted as well as one
// presenting the chain, and that a certificate of another CA is refused.
func TestLeafAloneAndChainBothVerify(t *testing.T) {
	chain, handshake := listener(t, "trust_pool msgbroker")
	if len(chain.Certificate) != 2 {
		t.Fatalf("the issued chain has %d certificates, want leaf and intermediate", len(chain.Certificate))
	}
	if err := handshake(chain); err != nil {
		t.Errorf("leaf and intermediate: %v", err)
	}
	if err := handshake(leafOnly(chain)); err != nil {
		t.Errorf("leaf alone: %v", err)
	}
	if err := handshake(foreignCertificate(t)); err == nil {
		t.Error("a certificate of another CA was accepted")
	}
}

// TestRootOnlyPoolRefusesALeafAlone shows what the msgbroker pool is for:
// trusting the root alone, a leaf without its intermediate cannot verify.
func TestRootOnlyPoolRefusesALeafAlone(t *testing.T) {
	chain, handshake := listener(t, "trust_pool pki_root {\n\t\t\t\tauthority local\n\t\t\t}")
	if err := handshake(chain); err != nil {
		t.Errorf("leaf and intermediate: %v", err)
	}
	if err := handshake(leafOnly(chain)); err == nil {
		t.Error("pki_root accepted a leaf without its intermediate")
	}
}

// foreignCertificate is a self-signed client certificate with the same CN.
func foreignCertificate(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7),
		Subject:      pkix.Name{CommonName: "proxy-1"},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestTrustPoolTakesNoOptions checks that an argument or a block is an
// error naming the line, not silently ignored.
func TestTrustPoolTakesNoOptions(t *testing.T) {
	for name, c := range map[string]struct{ pool, want string }{
		"argument": {"trust_pool msgbroker local", "Caddyfile:4"},
		"block":    {"trust_pool msgbroker {\n\t\t\t\tauthority local\n\t\t\t}", "trust_pool msgbroker takes no options, got 'authority' (the CA is the ca option of the msgbroker global option), at Caddyfile:5"},
	} {
		t.Run(name, func(t *testing.T) {
			pool := c.pool
			input := "https://localhost:8443 {\n\ttls internal {\n\t\tclient_auth {\n\t\t\t" + pool + "\n\t\t}\n\t}\n}\n"
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(input), map[string]any{"filename": "Caddyfile"})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("adapting %q: err = %v, want %q", pool, err, c.want)
			}
		})
	}
}
