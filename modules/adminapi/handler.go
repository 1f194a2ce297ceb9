// Package adminapi provides the `msgbroker_admin` HTTP handler: the admin
// API, with which administrators issue and revoke client certificates and
// manage portal accounts over HTTP. It is a thin adapter over the services
// the CLI uses (broker.Certificates, broker.Users), so both apply the same
// rules and write the same audit rows.
//
//	POST   /admin/certificates/generate  {client_id, role, validity_days?, csr?}
//	POST   /admin/certificates/revoke    {serial | client_id, reason}
//	GET    /admin/certificates           ?status&client_id&expiring_within&limit&cursor
//	GET    /admin/crl                    ?format&chain (the same CRLs as /crl)
//	POST   /admin/users                  {email, password?, role?, client_id?}
//	GET    /admin/users
//	GET    /admin/users/{id}
//	PATCH  /admin/users/{id}             {role?, active?, client_id?, unlock?}
//	DELETE /admin/users/{id}
//	GET    /admin/stats
//	GET    /admin/audit                  ?actor&action&target&outcome&since&until&limit&cursor
//	                                     (Accept: text/csv exports every match)
//
// Every request needs an access token of a user with role admin, checked
// by the portal's one token validation (broker.Portal.Authenticate): 401
// with a `WWW-Authenticate: Bearer` challenge without a valid token, 403
// for role user. Every mutating request is audited with the caller, the
// action, the target, the outcome and the remote address — refusals too,
// including an authenticated non-admin's attempt. Anonymous requests are
// not audited: anyone could fill the audit log with them; the access log
// has them.
//
// Caddyfile:
//
//	msgbroker_admin
//
// Requests outside /admin/ go to the next handler.
package adminapi

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/internal/httpapi"
	"github.com/msgbroker/caddy-msgbroker/modules/msgbroker"
	"github.com/msgbroker/caddy-msgbroker/storage"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler serves the admin API. Its token settings are the msgbroker
// global option's tokens block, shared with the portal.
type Handler struct {
	app    *msgbroker.App
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.msgbroker_admin",
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

// Prefix is the path every admin API route starts with.
const Prefix = "/admin/"

// call is what a route works with.
type call struct {
	svcs      *msgbroker.Services
	principal *broker.Principal
	// id is the {id} of the path, 0 when it has none.
	id int64
	// handedOver is set when the request reached the service, which
	// audits it; a failure before that is audited by ServeHTTP.
	handedOver bool
}

// actor is who acts, for the audit log.
func (c *call) actor(r *http.Request) broker.Actor {
	return broker.Actor{Name: c.principal.User.Email, RemoteAddr: httpapi.RemoteAddr(r)}
}

// ServeHTTP serves /admin/… and passes anything else on.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if !isAdminPath(r.URL.Path) {
		return next.ServeHTTP(w, r)
	}
	start := time.Now()
	sw := &httpapi.StatusWriter{ResponseWriter: w}
	rt, param, allowed := match(r.Method, r.URL.Path)
	endpoint := "unknown"
	if rt != nil {
		endpoint = rt.name
	}
	c := &call{}
	err := h.serve(sw, r, rt, param, allowed, c)
	if err != nil {
		h.auditRefusal(r, rt, c, err)
		if status := httpapi.WriteBearerError(sw, err); status >= 500 {
			h.logger.Error("admin request failed", zap.String("path", r.URL.Path), zap.Error(err))
		}
	}
	h.observe(r.Method, endpoint, sw.Status, time.Since(start))
	return nil
}

// serve authenticates the caller before it routes, so that without an
// admin token nothing — not even which paths exist — is revealed.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, rt *route, param string, allowed []string, c *call) error {
	svcs, err := h.app.Services(r.Context())
	if err != nil {
		return httpapi.Unavailable(err)
	}
	if svcs.Portal == nil {
		return httpapi.Unavailable(errors.New("the admin API has no token keys"))
	}
	c.svcs = svcs
	if c.principal, err = svcs.Portal.Authenticate(r.Context(), httpapi.BearerToken(r)); err != nil {
		return err
	}
	if !c.principal.IsAdmin() {
		return apperr.New(apperr.Forbidden, "admin_required", "the admin API needs an account with role admin")
	}
	switch {
	case rt == nil && len(allowed) > 0:
		w.Header().Set("Allow", joinMethods(allowed))
		return apperr.New(apperr.MethodNotAllowed, "method_not_allowed", "%s is not allowed here; use %s", r.Method, joinMethods(allowed))
	case rt == nil:
		return apperr.New(apperr.NotFound, "not_found", "no admin API endpoint at %s", r.URL.Path)
	}
	if param != "" {
		if c.id, err = strconv.ParseInt(param, 10, 64); err != nil || c.id <= 0 {
			return apperr.New(apperr.Invalid, "invalid_user_id", "a user id is a positive whole number")
		}
	}
	return rt.serve(h, w, r, c)
}

// auditRefusal audits a mutating request that failed before its service
// saw it. Only authenticated callers are audited (see the package doc).
func (h *Handler) auditRefusal(r *http.Request, rt *route, c *call, err error) {
	if rt == nil || rt.action == "" || c.handedOver || c.principal == nil {
		return
	}
	if aerr := broker.AuditRefusal(r.Context(), c.svcs.Store, c.actor(r), rt.action, r.URL.Path, err); aerr != nil {
		h.logger.Error("audit log write failed", zap.String("action", rt.action), zap.Error(aerr))
	}
}

func (h *Handler) observe(method, endpoint string, status int, elapsed time.Duration) {
	m := h.app.Metrics()
	if m == nil {
		return
	}
	endpoint = "admin_" + endpoint
	m.RequestsTotal.WithLabelValues(method, endpoint, strconv.Itoa(status)).Inc()
	m.RequestDuration.WithLabelValues(method, endpoint).Observe(elapsed.Seconds())
}

// maxRequestBytes bounds a request body: the largest is a generate
// request with a CSR (clientca.MaxCSRSize of PEM, JSON-escaped).
const maxRequestBytes = 160 << 10

func decode(w http.ResponseWriter, r *http.Request, v any) error {
	return httpapi.DecodeJSON(w, r, v, maxRequestBytes)
}

// userOf is the storage row of a user as the API shows it.
func userOf(u *storage.User) userAnswer {
	return userAnswer{
		ID: u.ID, Email: u.Email, Role: u.Role, ClientID: u.ClientID, Active: u.IsActive,
		FailedLogins: u.FailedLogins, LockedUntil: u.LockedUntil, LastLoginAt: u.LastLoginAt,
		PasswordChangedAt: u.PasswordChangedAt, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt,
	}
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
