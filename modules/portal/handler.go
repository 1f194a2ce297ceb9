// Package portal provides the `msgbroker_portal` HTTP handler: the portal
// API with which people log in and look at messages. Its tokens and rules
// are the msgbroker app's services (internal/tokens, broker.Portal), which
// the admin API shares.
//
//	POST /portal/auth/login         {email, password[, use_cookie]} → token pair
//	POST /portal/auth/refresh       {refresh_token} or the cookie   → new pair
//	POST /portal/auth/logout        {refresh_token} or the cookie   → 204
//	GET  /portal/profile                                            (bearer)
//	PUT  /portal/profile/password   {current_password, new_password[, use_cookie]} (bearer)
//	GET  /portal/messages           ?status&client_id&since&until&q&limit&cursor (bearer)
//	GET  /portal/messages/{id}      ?decrypt=true (admins; audited)  (bearer)
//
// Browsers keep the refresh token out of script reach: with
// "use_cookie": true the refresh token is set as an HttpOnly, SameSite=Strict
// cookie scoped to /portal/auth (Secure when served over TLS) instead of
// being returned in the body, and refresh and logout read it from there.
// A cookie-borne request must also carry the header
// `X-Requested-With` (any value): a cross-site form cannot set it, and a
// cross-site script cannot without a CORS preflight this handler never
// grants, so the cookie cannot be ridden (CSRF) even where SameSite is not
// honoured.
//
// Caddyfile:
//
//	msgbroker_portal
//
// It also serves the web portal, a page over this API for people: GET
// /portal/app (/portal/ and /portal redirect there) with its script and style sheet
// under /portal/assets/, embedded in the binary. The page keeps the access
// token in memory and the refresh token in the cookie; it lists and
// filters messages, shows one (its body for admins), the profile, and
// changes the password.
//
// Requests outside these paths go to the next handler; unknown paths
// under /portal/auth/, /portal/profile and /portal/messages get a JSON
// 404, under /portal/assets/ a 404 error.
package portal

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/internal/httpapi"
	"github.com/msgbroker/caddy-msgbroker/internal/webasset"
	"github.com/msgbroker/caddy-msgbroker/modules/msgbroker"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler serves the portal API. Its settings (token algorithm and
// lifetimes, lockouts) are the msgbroker global option's tokens and login
// blocks.
type Handler struct {
	app    *msgbroker.App
	logger *zap.Logger
	ui     map[string]webasset.Resource
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.msgbroker_portal",
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
	if h.ui, err = loadUI(); err != nil {
		return err
	}
	return nil
}

// Cookie and header of the browser mode.
const (
	RefreshCookie = "msgbroker_refresh"
	CookiePath    = "/portal/auth"
	CSRFHeader    = "X-Requested-With"
)

// route is one endpoint. Routes with auth need a valid access token.
type route struct {
	name   string
	method string
	auth   bool
	serve  func(h *Handler, w http.ResponseWriter, r *http.Request, c *call) error
}

// call is what a route works with.
type call struct {
	portal    *broker.Portal
	principal *broker.Principal
	param     string
}

// match finds the route of a path. api reports whether the path belongs
// to the portal API at all (anything else goes to the next handler).
func match(path string) (rt route, param string, api, ok bool) {
	switch path {
	case "/portal/auth/login":
		return route{"login", http.MethodPost, false, (*Handler).login}, "", true, true
	case "/portal/auth/refresh":
		return route{"refresh", http.MethodPost, false, (*Handler).refresh}, "", true, true
	case "/portal/auth/logout":
		return route{"logout", http.MethodPost, false, (*Handler).logout}, "", true, true
	case "/portal/profile":
		return route{"profile", http.MethodGet, true, (*Handler).profile}, "", true, true
	case "/portal/profile/password":
		return route{"password", http.MethodPut, true, (*Handler).password}, "", true, true
	case "/portal/messages":
		return route{"messages", http.MethodGet, true, (*Handler).messages}, "", true, true
	}
	if id, found := strings.CutPrefix(path, "/portal/messages/"); found && id != "" && !strings.Contains(id, "/") {
		return route{"message", http.MethodGet, true, (*Handler).message}, id, true, true
	}
	for _, p := range []string{"/portal/auth/", "/portal/profile/", "/portal/messages/"} {
		if strings.HasPrefix(path, p) {
			return route{}, "", true, false
		}
	}
	return route{}, "", false, false
}

// ServeHTTP routes portal API requests and passes anything else on.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if isUIPath(r.URL.Path) {
		return h.serveUI(w, r)
	}
	rt, param, api, ok := match(r.URL.Path)
	if !api {
		return next.ServeHTTP(w, r)
	}
	start := time.Now()
	sw := &httpapi.StatusWriter{ResponseWriter: w}
	w = sw
	endpoint := rt.name
	var err error
	switch {
	case !ok:
		endpoint = "unknown"
		err = apperr.New(apperr.NotFound, "not_found", "no portal API endpoint at %s", r.URL.Path)
	case r.Method != rt.method:
		w.Header().Set("Allow", rt.method)
		err = apperr.New(apperr.MethodNotAllowed, "method_not_allowed", "%s is not allowed here; use %s", r.Method, rt.method)
	default:
		err = h.serve(w, r, rt, param)
	}
	if err != nil {
		h.writeError(w, r, err)
	}
	h.observe(r.Method, endpoint, sw.Status, time.Since(start))
	return nil
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, rt route, param string) error {
	svcs, err := h.app.Services(r.Context())
	if err != nil {
		return httpapi.Unavailable(err)
	}
	if svcs.Portal == nil {
		return httpapi.Unavailable(errors.New("the portal has no token keys"))
	}
	c := &call{portal: svcs.Portal, param: param}
	if rt.auth {
		if c.principal, err = svcs.Portal.Authenticate(r.Context(), httpapi.BearerToken(r)); err != nil {
			return err
		}
	}
	return rt.serve(h, w, r, c)
}

func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var lo *broker.LockedOut
	if errors.As(err, &lo) {
		w.Header().Set("Retry-After", strconv.Itoa(lo.RetryAfterSeconds()))
	}
	if status := httpapi.WriteBearerError(w, err); status >= 500 {
		h.logger.Error("portal request failed", zap.String("path", r.URL.Path), zap.Error(err))
	}
}

func (h *Handler) observe(method, endpoint string, status int, elapsed time.Duration) {
	m := h.app.Metrics()
	if m == nil {
		return
	}
	endpoint = "portal_" + endpoint
	m.RequestsTotal.WithLabelValues(method, endpoint, strconv.Itoa(status)).Inc()
	m.RequestDuration.WithLabelValues(method, endpoint).Observe(elapsed.Seconds())
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
