package internalapi

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/msgbroker/caddy-msgbroker/internal/httpapi"
)

// TestAuthorizeWithoutAVerifiedCertificateIs401: on a listener that does
// not verify client certificates, a request without one, or with one the
// TLS layer did not verify, proves nothing and is refused before any
// service is asked.
func TestAuthorizeWithoutAVerifiedCertificateIs401(t *testing.T) {
	plain := httptest.NewRequest(http.MethodPost, "/internal/messages/register", nil)
	unverified := httptest.NewRequest(http.MethodPost, "/internal/messages/register", nil)
	unverified.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{}}}
	for name, r := range map[string]*http.Request{"plain HTTP": plain, "unverified certificate": unverified} {
		_, err := (&Handler{}).authorize(r, "proxy")
		if e := httpapi.AsError(err); e.Status != http.StatusUnauthorized || e.Code != "client_certificate_required" {
			t.Errorf("%s: %v, want 401 client_certificate_required", name, err)
		}
	}
}

func TestMatchRoutesEachEndpointToItsRoleAndMethod(t *testing.T) {
	cases := []struct{ path, name, method, role, param string }{
		{"/internal/messages/register", "register", http.MethodPost, "proxy", ""},
		{"/internal/messages/deliver", "deliver", http.MethodPost, "worker", ""},
		{"/internal/messages/0b6f8a9e-5c1d-4e8f-9a7b-2c3d4e5f6a7b/status", "status", http.MethodPut, "worker", "0b6f8a9e-5c1d-4e8f-9a7b-2c3d4e5f6a7b"},
	}
	for _, tc := range cases {
		rt, param, ok := match(tc.path)
		if !ok || rt.name != tc.name || rt.method != tc.method || rt.role != tc.role || param != tc.param {
			t.Errorf("match(%s) = %+v %q %v", tc.path, rt, param, ok)
		}
	}
	for _, path := range []string{"/internal/messages//status", "/internal/messages/a/b/status", "/internal/messages/x", "/internal/messages/register/"} {
		if _, _, ok := match(path); ok {
			t.Errorf("match(%s) found a route", path)
		}
	}
}
