// Package docs provides the `msgbroker_docs` HTTP handler: the gateway's
// OpenAPI document and the interactive documentation built on it.
//
//	GET /openapi.json          the document as JSON
//	GET /openapi.yaml          the document as YAML
//	GET /docs                  Swagger UI
//	GET /redoc                 ReDoc
//	GET /docs/assets/{asset}   the pages' scripts, style sheet and licenses
//
// Swagger UI (swagger-ui-dist 5.35.0, Apache-2.0) and ReDoc (redoc 2.5.4,
// MIT) are embedded in the binary, so the pages load nothing from another
// origin and work offline. Every answer carries a Content-Security-Policy
// that allows only the gateway's own scripts and style sheets, plus the
// inline styles, data: images and blob: workers the two UIs need. The pages
// use relative links, so the handler also works under a path prefix
// stripped by handle_path.
//
// Caddyfile:
//
//	msgbroker_docs
//
// It takes no options and needs no msgbroker app. Requests for other paths
// go to the next handler; unknown paths under /docs/assets/ get a JSON 404.
// Add `encode` to the site to compress the ~3 MB of scripts on the wire.
//
// To update the UIs, replace the files in assets/ with those of the npm
// packages (`npm pack swagger-ui-dist@5 redoc@2`: package/swagger-ui-bundle.js,
// package/swagger-ui.css, package/LICENSE, package/NOTICE,
// package/swagger-ui-bundle.js.LICENSE.txt; package/bundles/redoc.standalone.js,
// package/bundles/redoc.standalone.js.LICENSE.txt, package/LICENSE) and the
// versions above.
package docs

import (
	"embed"
	"fmt"
	"net/http"
	"path"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/msgbroker/caddy-msgbroker/internal/openapi"
	"github.com/msgbroker/caddy-msgbroker/internal/webasset"
)

func init() {
	caddy.RegisterModule(Handler{})
}

//go:embed assets pages
var files embed.FS

// AssetsPrefix is the path under which the pages' assets are served.
const AssetsPrefix = "/docs/assets/"

// ContentSecurityPolicy is sent with every answer of the handler. Both UIs
// set inline styles; ReDoc runs its search index in a blob: worker; the
// Swagger UI style sheet draws its icons with data: images.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the OpenAPI document and the documentation pages. It has
// no configuration.
type Handler struct {
	content map[string]webasset.Resource
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.msgbroker_docs",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision loads the embedded content (prepared once per process).
func (h *Handler) Provision(caddy.Context) error {
	content, err := loadContent()
	if err != nil {
		return err
	}
	h.content = content
	return nil
}

// contentTypes maps the extensions of the embedded files to media types.
var contentTypes = map[string]string{
	".js":      "text/javascript; charset=utf-8",
	".css":     "text/css; charset=utf-8",
	".txt":     "text/plain; charset=utf-8",
	".LICENSE": "text/plain; charset=utf-8",
	".NOTICE":  "text/plain; charset=utf-8",
}

// loadContent maps each served path to its resource; the hashes of the
// ~3 MB of assets are computed once per process, not on every reload.
var loadContent = sync.OnceValues(func() (map[string]webasset.Resource, error) {
	content := map[string]webasset.Resource{
		"/openapi.json": webasset.New("application/json", openapi.JSON()),
		"/openapi.yaml": webasset.New("application/yaml; charset=utf-8", openapi.YAML()),
	}
	for route, page := range map[string]string{"/docs": "pages/swagger-ui.html", "/redoc": "pages/redoc.html"} {
		body, err := files.ReadFile(page)
		if err != nil {
			return nil, err
		}
		content[route] = webasset.New("text/html; charset=utf-8", body)
	}
	assets, err := files.ReadDir("assets")
	if err != nil {
		return nil, err
	}
	for _, asset := range assets {
		body, err := files.ReadFile("assets/" + asset.Name())
		if err != nil {
			return nil, err
		}
		contentType, ok := contentTypes[path.Ext(asset.Name())]
		if !ok {
			contentType = "application/octet-stream"
		}
		content[AssetsPrefix+asset.Name()] = webasset.New(contentType, body)
	}
	return content, nil
})

// docsPrefix is the path space the handler owns.
const docsPrefix = "/docs/"

// ServeHTTP answers the documentation paths and passes anything else on.
// Everything under /docs/ is the documentation's: an unknown path there is
// a 404, never handed to the next handler (which, in a `handle` block of
// its own, would answer an empty 200), and /docs/ redirects to /docs.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	res, ok := h.content[r.URL.Path]
	if !ok && !strings.HasPrefix(r.URL.Path, docsPrefix) {
		return next.ServeHTTP(w, r)
	}
	if r.URL.Path == docsPrefix {
		http.Redirect(w, r, "/docs", http.StatusPermanentRedirect)
		return nil
	}
	webasset.SetPageHeaders(w.Header(), ContentSecurityPolicy)
	if !ok {
		return caddyhttp.Error(http.StatusNotFound, fmt.Errorf("no documentation at %s", r.URL.Path))
	}
	return res.Serve(w, r)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
