package internalapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/internal/httpapi"
	"github.com/msgbroker/caddy-msgbroker/modules/msgbroker"
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
		if e, ok := apperr.As(err); !ok || e.Kind != apperr.Unauthenticated || e.Code != "client_certificate_required" {
			t.Errorf("%s: %v, want Unauthenticated client_certificate_required", name, err)
		}
	}
}

// TestAuthorizeWithoutServicesIs503: a verified certificate cannot be
// checked while the app's services (and so the registry) are not ready;
// the answer is a 503 to retry, never a pass.
func TestAuthorizeWithoutServicesIs503(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/internal/messages/register", nil)
	leaf := &x509.Certificate{}
	r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}, VerifiedChains: [][]*x509.Certificate{{leaf}}}
	h := &Handler{services: func(context.Context) (*msgbroker.Services, error) {
		return nil, errors.New("msgbroker app is not ready: database down")
	}}
	_, err := h.authorize(r, "proxy")
	rec := httptest.NewRecorder()
	if status := httpapi.WriteError(rec, err); status != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("authorize without services = %v rendered %d, want 503 with Retry-After", err, status)
	}
	if strings.Contains(rec.Body.String(), "database down") {
		t.Fatalf("the 503 leaks its cause: %s", rec.Body)
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
