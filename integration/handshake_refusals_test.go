package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/internal/clientca"
)

// handshakeLogOptions are the global options that put the
// msgbroker_handshakes listener wrapper on every server and write the log
// to logFile.
func handshakeLogOptions(logFile string) string {
	return fmt.Sprintf(`servers {
		listener_wrappers {
			msgbroker_handshakes
		}
	}
	log {
		output file %s
		format json
	}`, logFile)
}

// refusalLines returns the "TLS handshake refused" lines of the log.
func refusalLines(t *testing.T, logFile string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(logFile)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var lines []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == "TLS handshake refused" {
			lines = append(lines, line)
		}
	}
	return lines
}

// expiredClient signs, with the broker's own client-issuing intermediate,
// a certificate that expired an hour ago.
func expiredClient(t *testing.T, g *gateway, cn string) tls.Certificate {
	t.Helper()
	issuer, err := clientca.New(clientca.Config{CAID: "local", Storage: g.services().CertStorage})
	if err != nil {
		t.Fatal(err)
	}
	inter, signer, err := issuer.Intermediate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-2 * time.Hour), NotAfter: time.Now().Add(-time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		KeyUsage:    x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, inter, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der, inter.Raw}, PrivateKey: key}
}

// presentRefused is handshakeRefused for a client that sends cert even
// when the server's list of acceptable CAs does not name its issuer, as
// curl and OpenSSL do; Go's client would send no certificate at all.
func presentRefused(t *testing.T, g *gateway, cert *tls.Certificate, why string) {
	t.Helper()
	cfg := g.tlsConfig(nil)
	cfg.NextProtos = []string{"http/1.1"}
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		if cert == nil {
			return &tls.Certificate{}, nil
		}
		return cert, nil
	}
	conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", g.mtlsPort), cfg)
	if err == nil {
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = fmt.Fprintf(conn, "GET /internal/messages/register HTTP/1.1\r\nHost: localhost\r\n\r\n")
		_, err = conn.Read(make([]byte, 1))
	}
	if err == nil || !strings.Contains(err.Error(), "remote error: tls") {
		t.Fatalf("%s: want a TLS alert, got %v", why, err)
	}
}

// TestHandshakeRefusalsAreLoggedAndCounted makes real TLS clients fail
// each way a client certificate is refused — two of them inside Go's TLS
// stack before any verifier runs — and checks that each refusal gives one
// log line naming the reason, the certificate and the peer, and one count
// in msgbroker_tls_handshake_refusals_total.
func TestHandshakeRefusalsAreLoggedAndCounted(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	g := startConfigured(t, &gateway{globalOptions: handshakeLogOptions(logFile)}, databaseConfig(t, "sqlite"), "")
	revoked, serial := g.issue("proxy-revoked", "proxy")
	certs := g.services().Certificates
	if _, err := certs.Revoke(context.Background(), adminActor, serial, "test"); err != nil {
		t.Fatal(err)
	}
	foreign := selfSignedClient(t, "proxy-foreign")
	expired := expiredClient(t, g, "proxy-expired")
	cases := []struct {
		name, reason, clientID string
		cert                   *tls.Certificate
	}{
		{"no certificate", "no_certificate", "", nil},
		{"another CA", "unknown_ca", "proxy-foreign", &foreign},
		{"expired", "expired", "proxy-expired", &expired},
		{"revoked", "revoked", "proxy-revoked", &revoked},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			series := fmt.Sprintf(`msgbroker_tls_handshake_refusals_total{reason="%s"}`, tc.reason)
			before, linesBefore := g.metric(series), len(refusalLines(t, logFile))
			presentRefused(t, g, tc.cert, tc.name)
			deadline := time.Now().Add(5 * time.Second)
			for g.metric(series) == before && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if got := g.metric(series) - before; got != 1 {
				t.Errorf("%s grew by %v, want 1", series, got)
			}
			lines := refusalLines(t, logFile)[linesBefore:]
			if len(lines) != 1 {
				t.Fatalf("%d refusal lines, want 1: %v", len(lines), lines)
			}
			line := lines[0]
			if line["reason"] != tc.reason || line["remote_addr"] == nil || (tc.clientID != "" && line["client_id"] != tc.clientID) {
				t.Errorf("log line = %v, want reason %s, client_id %q and the remote address", line, tc.reason, tc.clientID)
			}
			if tc.cert != nil && line["serial"] == nil {
				t.Errorf("log line = %v, want the serial", line)
			}
		})
	}
	t.Run("accepted handshakes log nothing", func(t *testing.T) {
		good, _ := g.issue("proxy-good", "proxy")
		linesBefore := len(refusalLines(t, logFile))
		if r := g.call(g.client(&good), "POST", "/internal/messages/register", registerBody("", "+4915200000013", "x")); r.Status != http.StatusCreated {
			t.Fatalf("register = %d %s", r.Status, r.Raw)
		}
		if lines := refusalLines(t, logFile)[linesBefore:]; len(lines) != 0 {
			t.Errorf("an accepted handshake logged %v", lines)
		}
	})
}

// TestCertificateGaugeFollowsTheDatabase issues and revokes the way the CLI
// does — in the database, without telling this gateway — and the
// msgbroker_certificates gauge follows once the gateway polls, which the
// issued and revoked counters of this process cannot.
func TestCertificateGaugeFollowsTheDatabase(t *testing.T) {
	g := startGateway(t, "sqlite", "")
	running := g.services().Certificates
	elsewhere := &broker.Certificates{Store: running.Store, Issuer: running.Issuer}
	var serials []string
	for _, req := range []broker.IssueRequest{{ClientID: "proxy-g1", Role: "proxy"}, {ClientID: "proxy-g2", Role: "proxy"}, {ClientID: "worker-g1", Role: "worker"}} {
		_, row, err := elsewhere.Issue(context.Background(), adminActor, req)
		if err != nil {
			t.Fatal(err)
		}
		serials = append(serials, row.SerialNumber)
	}
	revokeBehindTheGatewaysBack(t, g, serials[1])
	want := map[string]float64{
		`msgbroker_certificates{role="proxy",status="active"}`:  1,
		`msgbroker_certificates{role="proxy",status="revoked"}`: 1,
		`msgbroker_certificates{role="worker",status="active"}`: 1,
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		missing := ""
		for series, v := range want {
			if got := g.metric(series); got != v {
				missing = fmt.Sprintf("%s = %v, want %v", series, got, v)
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the poll: %s", missing)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
