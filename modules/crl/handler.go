// Package crl provides the `msgbroker_crl` HTTP handler: the certificate
// revocation lists of the broker's client certificates, for TLS terminators
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
// GET answers the DER CRL of the current client-issuing intermediate
// (application/pkix-crl); `?format=pem` answers it as PEM. `?chain=full`
// answers a PEM bundle with a CRL for every level of a client's chain: one
// per client-issuing intermediate whose leaves may still be in use and one
// signed by the pki root. nginx and HAProxy check every level and refuse
// all clients without the root's, so point them at the bundle. A CRL is
// public by nature (it holds serials, no secrets), so the route needs no
// authentication.
//
// Every fetch reads the database and signs anew (a query and an ECDSA
// signature per CRL, well under a millisecond): a revocation is listed by
// the very next fetch, on any node, whichever process revoked it.
package crl

import (
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/msgbroker/caddy-msgbroker/internal/httpapi"
	"github.com/msgbroker/caddy-msgbroker/modules/msgbroker"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler serves the CRL. It has no configuration.
type Handler struct {
	app    *msgbroker.App
	logger *zap.Logger
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
	return nil
}

// ServeHTTP answers GET and HEAD with the current CRL, or the bundle.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if err := httpapi.RequireRead(w, r); err != nil {
		return err
	}
	query := r.URL.Query()
	body, contentType, err := h.render(r, query.Get("format"), query.Get("chain"))
	if err != nil {
		if status := httpapi.WriteError(w, err); status >= 500 {
			h.logger.Error("serving the CRL failed", zap.Error(err))
		}
		return nil
	}
	w.Header().Set("Content-Type", contentType)
	// Fetchers must come back for each use: a copy could hide a revocation.
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
	return nil
}

// render signs the CRL (or every CRL of the chain) and encodes it, as
// /admin/crl does too.
func (h *Handler) render(r *http.Request, format, chain string) ([]byte, string, error) {
	svcs, err := h.app.Services(r.Context())
	if err != nil {
		return nil, "", httpapi.Unavailable(err)
	}
	return svcs.Certificates.CRLDocument(r.Context(), format, chain)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
