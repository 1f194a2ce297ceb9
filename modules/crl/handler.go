// Package crl provides the `msgbroker_crl` HTTP handler: the certificate
// revocation list of the broker's client certificates, for TLS terminators
// other than Caddy (nginx `ssl_crl`, HAProxy `crl-file`, Envoy) that front
// the internal API. Caddy itself needs none: the msgbroker verifier refuses
// revoked certificates at the handshake.
//
// Caddyfile:
//
//	handle /crl {
//		msgbroker_crl
//	}
//
// GET answers the DER CRL (application/pkix-crl); `?format=pem` answers
// PEM. A CRL is public by nature (it holds serials, no secrets), so the
// route needs no authentication. It is signed by the client-issuing
// intermediate, lists every revoked certificate that has not expired, and
// is valid for 24 hours; a copy is kept for a few seconds so a burst of
// fetches costs one query.
package crl

import (
	"encoding/pem"
	"net/http"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/internal/httpapi"
	"github.com/msgbroker/caddy-msgbroker/modules/msgbroker"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// cacheFor is how long a signed CRL is reused.
const cacheFor = 5 * time.Second

// Handler serves the CRL. It has no configuration.
type Handler struct {
	app    *msgbroker.App
	logger *zap.Logger

	mu       *sync.Mutex
	der      []byte
	signedAt time.Time
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.msgbroker_crl",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision gets the msgbroker app.
func (h *Handler) Provision(ctx caddy.Context) error {
	app, err := msgbroker.From(ctx)
	if err != nil {
		return err
	}
	h.app = app
	h.logger = ctx.Logger()
	h.mu = new(sync.Mutex)
	return nil
}

// ServeHTTP answers GET and HEAD with the current CRL.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if err := httpapi.RequireRead(w, r); err != nil {
		return err
	}
	format := r.URL.Query().Get("format")
	if format != "" && format != "der" && format != "pem" {
		httpapi.WriteError(w, apperr.New(apperr.Invalid, "invalid_format", "format must be der or pem"))
		return nil
	}
	der, err := h.current(r)
	if err != nil {
		if status := httpapi.WriteError(w, err); status >= 500 {
			h.logger.Error("serving the CRL failed", zap.Error(err))
		}
		return nil
	}
	body, contentType := der, "application/pkix-crl"
	if format == "pem" {
		body, contentType = pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), "application/x-pem-file"
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "public, max-age=60")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
	return nil
}

// current returns a CRL signed less than cacheFor ago, signing a new one
// when needed.
func (h *Handler) current(r *http.Request) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.der != nil && time.Since(h.signedAt) < cacheFor {
		return h.der, nil
	}
	svcs, err := h.app.Services(r.Context())
	if err != nil {
		return nil, httpapi.Unavailable(err)
	}
	der, err := svcs.Certificates.CRL(r.Context())
	if err != nil {
		return nil, err
	}
	h.der, h.signedAt = der, time.Now()
	return der, nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
