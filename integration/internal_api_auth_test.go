package integration

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/msgbroker/caddy-msgbroker/internal/testcaddy"
)

// TestInternalAPIWithoutACertificateIs401 serves the internal API on a
// listener that lets clients in without a certificate (client_auth mode
// verify_if_given): a request without one is answered 401
// client_certificate_required, never served, while a verified certificate
// on the same listener still is.
func TestInternalAPIWithoutACertificateIs401(t *testing.T) {
	g := startGateway(t, "sqlite", "")
	cert, _ := g.issue("proxy-optional", "proxy")
	port := testcaddy.FreePort(t)
	site := fmt.Sprintf(`https://localhost:%d {
	tls internal {
		client_auth {
			mode verify_if_given
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
	if err := g.srv.Reload(g.caddyfile + site); err != nil {
		t.Fatal(err)
	}
	g.mtlsPort = port
	g.waitForServerCertificate()
	for _, path := range []string{"/internal/messages/register", "/internal/messages/deliver"} {
		r := g.call(g.client(nil), "POST", path, registerBody("", "+4915200000014", "x"))
		if r.Status != http.StatusUnauthorized || r.errorCode() != "client_certificate_required" {
			t.Errorf("%s without a certificate = %d %s, want 401 client_certificate_required", path, r.Status, r.Raw)
		}
	}
	if r := g.call(g.client(&cert), "POST", "/internal/messages/register", registerBody("", "+4915200000014", "x")); r.Status != http.StatusCreated {
		t.Errorf("with a certificate on the same listener = %d %s", r.Status, r.Raw)
	}
}
