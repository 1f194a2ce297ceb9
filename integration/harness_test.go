// Package integration drives a real Caddy built from our modules over real
// TLS connections, against SQLite and MariaDB.
package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/msgbroker/caddy-msgbroker/internal/apivalidate"
	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/internal/testcaddy"
	"github.com/msgbroker/caddy-msgbroker/modules/msgbroker"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

// gateway is a running broker with an mTLS listener for the internal API
// and a plain HTTP listener for /health.
type gateway struct {
	t         *testing.T
	srv       *testcaddy.Server
	mtlsPort  int
	httpPort  int
	app       *msgbroker.App
	serverCAs *x509.CertPool
	// caddyfile is the config the gateway was started with, for reloads.
	caddyfile string
	// globalOptions are added to the global options block.
	globalOptions string
	// sites are more Caddyfile sites, appended to the config.
	sites string
}

// databaseConfig returns the `database` line of the msgbroker option for a
// dialect, creating the database it points at.
func databaseConfig(t *testing.T, dialect string) string {
	t.Helper()
	if dialect == "mysql" {
		t.Setenv("MSGBROKER_IT_DSN", storagetest.MySQL(t))
		return "database mysql {env.MSGBROKER_IT_DSN} {\n\t\t\tauto_migrate on\n\t\t}"
	}
	return "database sqlite " + filepath.Join(t.TempDir(), "broker.db")
}

// eachDialect runs fn against a gateway on SQLite and one on MariaDB.
func eachDialect(t *testing.T, fn func(t *testing.T, g *gateway)) {
	for _, dialect := range []string{"sqlite", "mysql"} {
		t.Run(dialect, func(t *testing.T) {
			fn(t, startGateway(t, dialect, ""))
		})
	}
}

func startGateway(t *testing.T, dialect, extraOptions string) *gateway {
	t.Helper()
	return startGatewayWith(t, databaseConfig(t, dialect), extraOptions)
}

// startGatewayWith starts a gateway whose msgbroker option has the given
// database line.
func startGatewayWith(t *testing.T, databaseLine, extraOptions string) *gateway {
	t.Helper()
	return startConfigured(t, &gateway{}, databaseLine, extraOptions)
}

// startConfigured starts g, whose globalOptions may be set.
func startConfigured(t *testing.T, g *gateway, databaseLine, extraOptions string) *gateway {
	t.Helper()
	g.t, g.mtlsPort, g.httpPort = t, testcaddy.FreePort(t), testcaddy.FreePort(t)
	g.caddyfile = g.config(databaseLine, extraOptions)
	g.start()
	return g
}

// start runs the Caddyfile in g.caddyfile and waits for the listener's
// certificate.
func (g *gateway) start() {
	t := g.t
	t.Helper()
	g.srv = testcaddy.Start(t, g.caddyfile)
	app, err := caddy.ActiveContext().App(msgbroker.AppName)
	if err != nil {
		t.Fatalf("getting the running msgbroker app: %v", err)
	}
	g.app = app.(*msgbroker.App)
	rootPEM, err := os.ReadFile(filepath.Join(g.srv.StorageDir, "pki", "authorities", "local", "root.crt"))
	if err != nil {
		t.Fatalf("reading the local CA root: %v", err)
	}
	g.serverCAs = x509.NewCertPool()
	g.serverCAs.AppendCertsFromPEM(rootPEM)
	g.waitForServerCertificate()
}

// waitForServerCertificate waits until Caddy has issued the listener's own
// certificate (it does so in the background after start); until then
// handshakes end with an internal error.
func (g *gateway) waitForServerCertificate() {
	g.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", g.mtlsPort), g.tlsConfig(nil))
		if err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("the mTLS listener never presented a certificate: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// internalSite is the Caddyfile site of the internal API: mutual TLS with
// the local CA and the msgbroker verifier, as in Caddyfile.example.
func internalSite(port int) string {
	return fmt.Sprintf(`https://localhost:%d {
	tls internal {
		client_auth {
			mode require_and_verify
			trust_pool pki_root {
				authority local
			}
			verifier msgbroker
		}
	}
	msgbroker_internal
	respond 404
}
`, port)
}

func (g *gateway) config(databaseLine, extraOptions string) string {
	// Poll fast so revocations show within a test, unless the test sets its
	// own interval (an option may appear only once).
	poll := "revocation_poll_interval 200ms"
	if strings.Contains(extraOptions, "revocation_poll_interval") {
		poll = ""
	}
	return fmt.Sprintf(`{
	%s
	pki {
		ca local {
			name "integration CA"
		}
	}
	msgbroker {
		%s
		dev_keys %s
		%s
		%s
	}
}

%s
http://127.0.0.1:%d {
	handle /health {
		msgbroker_health
	}
	handle /crl {
		msgbroker_crl
	}
}
%s`, g.globalOptions, databaseLine, filepath.Join(g.t.TempDir(), "secrets"), poll, extraOptions, internalSite(g.mtlsPort), g.httpPort, g.sites)
}

// services returns the running gateway's services.
func (g *gateway) services() *msgbroker.Services {
	g.t.Helper()
	s, err := g.app.Services(context.Background())
	if err != nil {
		g.t.Fatalf("the gateway's services: %v", err)
	}
	return s
}

// issue makes a client certificate through the broker's one issuing path.
func (g *gateway) issue(clientID, role string) (tls.Certificate, string) {
	g.t.Helper()
	certs := g.services().Certificates
	issued, row, err := certs.Issue(context.Background(), broker.Actor{Name: "integration-test"},
		broker.IssueRequest{ClientID: clientID, Role: role, Days: 365})
	if err != nil {
		g.t.Fatalf("issuing %s/%s: %v", clientID, role, err)
	}
	pair, err := tls.X509KeyPair(issued.ChainPEM, issued.PrivateKeyPEM)
	if err != nil {
		g.t.Fatalf("loading issued pair: %v", err)
	}
	return pair, row.SerialNumber
}

// client returns an HTTP client presenting cert (none when nil) that
// trusts the gateway's server certificate. Each client has its own
// connection pool, so handshakes happen when the test expects them.
// Every answer is validated against the OpenAPI document.
func (g *gateway) client(cert *tls.Certificate) *http.Client {
	return apivalidate.Client(g.t, &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: g.tlsConfig(cert), ForceAttemptHTTP2: true},
	})
}

func (g *gateway) tlsConfig(cert *tls.Certificate) *tls.Config {
	cfg := &tls.Config{RootCAs: g.serverCAs, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return cfg
}

func (g *gateway) url(path string) string {
	return fmt.Sprintf("https://localhost:%d%s", g.mtlsPort, path)
}

// response is a decoded JSON answer.
type response struct {
	Status int
	Body   map[string]any
	Raw    []byte
}

func (r response) errorCode() string {
	e, _ := r.Body["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

// call sends body (a string is sent as is, anything else as JSON) and
// decodes the JSON answer; a transport error fails the test.
func (g *gateway) call(c *http.Client, method, path string, body any) response {
	g.t.Helper()
	resp, err := g.send(c, method, path, body)
	if err != nil {
		g.t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp
}

func (g *gateway) send(c *http.Client, method, path string, body any) (response, error) {
	var reader io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		reader = bytes.NewBufferString(b)
	case []byte:
		reader = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return response{}, err
		}
		reader = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, g.url(path), reader)
	if err != nil {
		return response{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	out := response{Status: resp.StatusCode, Raw: raw}
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &out.Body); err != nil {
			return out, fmt.Errorf("answer is not JSON (%d): %s", resp.StatusCode, raw)
		}
	}
	return out, nil
}

var adminActor = broker.Actor{Name: "integration-admin", RemoteAddr: "127.0.0.1"}

// metric returns the value of the sample named exactly series (name and
// labels, as the text exposition format prints them) on Caddy's metrics
// endpoint, or 0 when absent.
func (g *gateway) metric(series string) float64 {
	g.t.Helper()
	status, body, err := g.srv.AdminGet("/metrics")
	if err != nil || status != http.StatusOK {
		g.t.Fatalf("GET /metrics = %d, %v", status, err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if value, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
			if err != nil {
				g.t.Fatalf("metric %s: %v", series, err)
			}
			return v
		}
	}
	return 0
}
