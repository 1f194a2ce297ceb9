// Package health provides the `msgbroker_health` HTTP handler: the broker's
// health check, reporting the database, Redis, the encryption keys and the
// client-certificate CA.
//
// Caddyfile:
//
//	msgbroker_health
//
// typically inside `handle /health { … }`. The answer is
//
//	{"status":"healthy","timestamp":"2026-11-24T10:30:00Z",
//	 "components":{"database":"healthy","redis":"disabled","encryption":"healthy","ca":"healthy"}}
//
// with HTTP 200 when healthy or degraded and 503 when unhealthy, so load
// balancers take an unhealthy node out of rotation.
package health

import (
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/msgbroker/caddy-msgbroker/internal/httpapi"
	"github.com/msgbroker/caddy-msgbroker/modules/msgbroker"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler answers health checks. It has no configuration.
type Handler struct {
	app *msgbroker.App
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.msgbroker_health",
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
	return nil
}

// ServeHTTP answers GET and HEAD with the health report.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if err := httpapi.RequireRead(w, r); err != nil {
		return err
	}
	report := h.app.CheckHealth(r.Context())
	status := http.StatusOK
	if report.Status == msgbroker.Unhealthy {
		status = http.StatusServiceUnavailable
	}
	httpapi.WriteJSON(w, status, report)
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
