package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/msgbroker/caddy-msgbroker/internal/apivalidate"
	"github.com/msgbroker/caddy-msgbroker/internal/clientca"
	"github.com/msgbroker/caddy-msgbroker/internal/testcaddy"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

// The nginx lines the README documents; this file proves them.
const nginxClientAuth = `ssl_verify_client      on;
		ssl_verify_depth       2;
		ssl_client_certificate %s;
		ssl_crl                %s;`

// The HAProxy bind options the README documents.
const haproxyClientAuth = `ca-file %s verify required crl-file %s`

// TestNginxRefusesARevokedCertificateWithTheCRLBundle runs Debian's nginx
// with ssl_verify_client and ssl_crl set to the bundle the gateway
// publishes (/crl?chain=full), as the README tells an operator to, and checks
// that a valid client certificate passes and a revoked one is refused.
// nginx checks a CRL for every level of the chain, so without the root's
// CRL it would refuse both.
func TestNginxRefusesARevokedCertificateWithTheCRLBundle(t *testing.T) {
	nginx := requireTool(t, "nginx", "apt-get install -y nginx-light")
	g := startGateway(t, "sqlite", "")
	valid, _ := g.issue("proxy-nginx-valid", "proxy")
	revoked, serial := g.issue("proxy-nginx-revoked", "proxy")
	g.revoke(serial)

	dir := t.TempDir()
	rootFile := filepath.Join(g.srv.StorageDir, "pki", "authorities", "local", "root.crt")
	crlFile := filepath.Join(dir, "crl.pem")
	if err := os.WriteFile(crlFile, g.fetchCRL("?chain=full"), 0o644); err != nil {
		t.Fatal(err)
	}
	serverCA, port := startNginx(t, nginx, dir, fmt.Sprintf(nginxClientAuth, rootFile, crlFile))

	get := func(cert tls.Certificate) (int, string) {
		t.Helper()
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs: serverCA, ServerName: "localhost", Certificates: []tls.Certificate{cert},
		}}}
		resp, err := client.Get(fmt.Sprintf("https://127.0.0.1:%d/", port))
		if err != nil {
			t.Fatalf("GET through nginx: %v", err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if status, body := get(valid); status != http.StatusOK || !strings.Contains(body, "SUCCESS") {
		t.Errorf("a valid certificate through nginx = %d %q, want 200 SUCCESS", status, body)
	}
	if status, body := get(revoked); status != http.StatusBadRequest || !strings.Contains(body, "certificate") {
		t.Errorf("a revoked certificate through nginx = %d %q, want nginx's 400 certificate error", status, body)
	}
}

// TestHAProxyRefusesARevokedCertificateWithTheCRLBundle does the same with
// HAProxy's `crl-file`, which refuses the handshake itself.
func TestHAProxyRefusesARevokedCertificateWithTheCRLBundle(t *testing.T) {
	haproxy := requireTool(t, "haproxy", "apt-get install -y haproxy")
	g := startGateway(t, "sqlite", "")
	valid, _ := g.issue("proxy-haproxy-valid", "proxy")
	revoked, serial := g.issue("proxy-haproxy-revoked", "proxy")
	g.revoke(serial)

	dir := t.TempDir()
	crlFile := filepath.Join(dir, "crl.pem")
	if err := os.WriteFile(crlFile, g.fetchCRL("?chain=full"), 0o644); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, serverCA := selfSignedServer(t, dir)
	certPEM, _ := os.ReadFile(certFile)
	keyPEM, _ := os.ReadFile(keyFile)
	bundle := filepath.Join(dir, "server.pem")
	if err := os.WriteFile(bundle, append(certPEM, keyPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	port := testcaddy.FreePort(t)
	conf := filepath.Join(dir, "haproxy.cfg")
	err := os.WriteFile(conf, fmt.Appendf(nil, `defaults
	mode http
	timeout connect 5s
	timeout client 10s
	timeout server 10s

frontend internal
	bind 127.0.0.1:%d ssl crt %s %s
	http-request return status 200 content-type text/plain string "SUCCESS"
`, port, bundle, fmt.Sprintf(haproxyClientAuth, filepath.Join(g.srv.StorageDir, "pki", "authorities", "local", "root.crt"), crlFile)), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	startDaemon(t, port, "", haproxy, "-db", "-f", conf)

	get := func(cert tls.Certificate) (string, error) {
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs: serverCA, ServerName: "localhost", Certificates: []tls.Certificate{cert},
		}}}
		resp, err := client.Get(fmt.Sprintf("https://127.0.0.1:%d/", port))
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body), nil
	}
	if body, err := get(valid); err != nil || body != "SUCCESS" {
		t.Errorf("a valid certificate through HAProxy = %q, %v; want SUCCESS", body, err)
	}
	if body, err := get(revoked); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("a revoked certificate through HAProxy = %q, %v; want the handshake refused (certificate revoked)", body, err)
	}
}

// TestOpensslVerifiesEveryLevelWithTheCRLBundle checks the bundle with
// `openssl verify -crl_check_all`, which fails a valid certificate with
// "unable to get certificate CRL" when a level has no CRL.
func TestOpensslVerifiesEveryLevelWithTheCRLBundle(t *testing.T) {
	openssl := requireTool(t, "openssl", "apt-get install -y openssl")
	g := startGateway(t, "sqlite", "")
	valid, _ := g.issue("proxy-openssl-valid", "proxy")
	revoked, serial := g.issue("proxy-openssl-revoked", "proxy")
	g.revoke(serial)

	dir := t.TempDir()
	crlFile := filepath.Join(dir, "crl.pem")
	if err := os.WriteFile(crlFile, g.fetchCRL("?chain=full"), 0o644); err != nil {
		t.Fatal(err)
	}
	verify := func(name string, cert tls.Certificate) (string, error) {
		leaf := filepath.Join(dir, name+".crt")
		inter := filepath.Join(dir, name+".intermediate.crt")
		writePEMCert(t, leaf, cert.Certificate[0])
		writePEMCert(t, inter, cert.Certificate[1])
		out, err := exec.Command(openssl, "verify", "-crl_check_all",
			"-CAfile", filepath.Join(g.srv.StorageDir, "pki", "authorities", "local", "root.crt"),
			"-untrusted", inter, "-CRLfile", crlFile, leaf).CombinedOutput()
		return string(out), err
	}
	if out, err := verify("valid", valid); err != nil {
		t.Errorf("openssl verify -crl_check_all of a valid certificate: %v\n%s", err, out)
	}
	if out, err := verify("revoked", revoked); err == nil || !strings.Contains(out, "certificate revoked") {
		t.Errorf("openssl verify -crl_check_all of a revoked certificate: %v\n%s", err, out)
	}
}

// TestCRLListsARevocationAtOnce fetches the CRL, revokes, and fetches again
// at once: the second answer must list the revocation (no cached copy).
func TestCRLListsARevocationAtOnce(t *testing.T) {
	g := startGateway(t, "sqlite", "")
	_, serial := g.issue("proxy-crl-now", "proxy")
	for _, query := range []string{"", "?format=pem", "?chain=full"} {
		if listed := crlSerials(t, g.fetchCRL(query)); listed[serial] {
			t.Fatalf("GET /crl%s lists %s before its revocation", query, serial)
		}
	}
	g.revoke(serial)
	for _, query := range []string{"", "?format=pem", "?chain=full"} {
		if listed := crlSerials(t, g.fetchCRL(query)); !listed[serial] {
			t.Errorf("GET /crl%s right after the revocation does not list %s", query, serial)
		}
	}
}

// requireTool returns the path of a program the test drives, skipping
// (failing under MSGBROKER_TEST_REQUIRE_SERVICES=1) when it is missing.
func requireTool(t *testing.T, name, install string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	msg := fmt.Sprintf("%s not found (%s to run this test)", name, install)
	if os.Getenv(storagetest.EnvRequireServices) == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// revoke revokes serial through the broker's certificate service.
func (g *gateway) revoke(serial string) {
	g.t.Helper()
	certs := g.services().Certificates
	if _, err := certs.Revoke(context.Background(), adminActor, serial, "keyCompromise"); err != nil {
		g.t.Fatal(err)
	}
}

// fetchCRL GETs /crl with query and checks the answer's cache headers.
func (g *gateway) fetchCRL(query string) []byte {
	g.t.Helper()
	client := apivalidate.Client(g.t, &http.Client{Timeout: 10 * time.Second})
	resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/crl%s", g.httpPort, query))
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		g.t.Fatalf("GET /crl%s = %d %v: %s", query, resp.StatusCode, err, body)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
		g.t.Errorf("GET /crl%s: Cache-Control %q, want no-cache", query, cc)
	}
	return body
}

// crlSerials returns the serials listed by every CRL in body (DER, or one or
// more PEM blocks).
func crlSerials(t *testing.T, body []byte) map[string]bool {
	t.Helper()
	ders := [][]byte{body}
	if strings.HasPrefix(string(body), "-----BEGIN") {
		ders = nil
		for rest := body; ; {
			var block *pem.Block
			if block, rest = pem.Decode(rest); block == nil {
				break
			}
			ders = append(ders, block.Bytes)
		}
	}
	listed := map[string]bool{}
	for _, der := range ders {
		crl, err := x509.ParseRevocationList(der)
		if err != nil {
			t.Fatalf("parsing a CRL: %v", err)
		}
		for _, e := range crl.RevokedCertificateEntries {
			listed[clientca.SerialHex(e.SerialNumber)] = true
		}
	}
	return listed
}

func writePEMCert(t *testing.T, path string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}

// startNginx runs nginx in the foreground as one process with its own
// prefix, a self-signed server certificate for localhost and clientAuth
// lines in the server block, and stops it when the test ends. It returns the
// pool that trusts the server certificate and the port.
func startNginx(t *testing.T, nginx, dir, clientAuth string) (*x509.CertPool, int) {
	t.Helper()
	serverCert, serverKey, pool := selfSignedServer(t, dir)
	port := testcaddy.FreePort(t)
	conf := filepath.Join(dir, "nginx.conf")
	err := os.WriteFile(conf, fmt.Appendf(nil, `daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events {}
http {
	access_log off;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	server {
		listen 127.0.0.1:%[2]d ssl;
		server_name localhost;
		ssl_certificate     %[3]s;
		ssl_certificate_key %[4]s;
		%[5]s
		location / {
			return 200 "$ssl_client_verify $ssl_client_s_dn\n";
		}
	}
}
`, dir, port, serverCert, serverKey, clientAuth), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	startDaemon(t, port, filepath.Join(dir, "error.log"), nginx, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "startup.log"))
	return pool, port
}

// startDaemon runs a server in the foreground until the test ends and waits
// until it listens on port; errorLog is shown when it never does.
func startDaemon(t *testing.T, port int, errorLog, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	logs := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			logFile, _ := os.ReadFile(errorLog)
			t.Fatalf("%s never listened on %d: %v\n%s\n%s", filepath.Base(name), port, err, logs.String(), logFile)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// selfSignedServer writes a certificate and key for localhost into dir.
func selfSignedServer(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	writePEMCert(t, certFile, der)
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, pool
}
