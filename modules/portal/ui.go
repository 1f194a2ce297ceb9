package portal

import (
	"embed"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/msgbroker/caddy-msgbroker/internal/webasset"
)

// The web portal: one page and its script and style sheet, embedded in
// the binary, over the portal API of the same handler.
const (
	// UIPath is the page. /portal/ and /portal redirect to it (a path
	// ending in a slash cannot be described in the OpenAPI document).
	UIPath = "/portal/app"
	// UIAssetsPrefix is where its script and style sheet are.
	UIAssetsPrefix = "/portal/assets/"
)

// PageSecurityPolicy is sent with every answer under the page's paths.
// The page loads its own script and style sheet and talks to its own
// origin, nothing else: no inline script or style, no forms posted by the
// browser (the script sends them), no framing.
const PageSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
	"img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

//go:embed web
var webFiles embed.FS

// loadUI maps each path of the web portal to its resource (once per
// process).
var loadUI = sync.OnceValues(func() (map[string]webasset.Resource, error) {
	ui := map[string]webasset.Resource{}
	for path, file := range map[string]struct{ name, contentType string }{
		UIPath:                         {"web/index.html", "text/html; charset=utf-8"},
		UIAssetsPrefix + "app.js":      {"web/app.js", "text/javascript; charset=utf-8"},
		UIAssetsPrefix + "app.css":     {"web/app.css", "text/css; charset=utf-8"},
		UIAssetsPrefix + "favicon.svg": {"web/favicon.svg", "image/svg+xml"},
	} {
		body, err := webFiles.ReadFile(file.name)
		if err != nil {
			return nil, err
		}
		ui[path] = webasset.New(file.contentType, body)
	}
	return ui, nil
})

// isUIPath reports whether path belongs to the web portal's pages.
func isUIPath(path string) bool {
	return path == "/portal" || path == "/portal/" || path == UIPath || strings.HasPrefix(path, UIAssetsPrefix)
}

// serveUI answers a path of the web portal: the page, an asset, a
// redirect of /portal and /portal/ to the page, or a 404 under the assets
// path (which an operator's handle_errors may style).
func (h *Handler) serveUI(w http.ResponseWriter, r *http.Request) error {
	if r.URL.Path == "/portal" || r.URL.Path == "/portal/" {
		http.Redirect(w, r, UIPath, http.StatusPermanentRedirect)
		return nil
	}
	webasset.SetPageHeaders(w.Header(), PageSecurityPolicy)
	res, ok := h.ui[r.URL.Path]
	if !ok {
		return caddyhttp.Error(http.StatusNotFound, fmt.Errorf("no portal page at %s", r.URL.Path))
	}
	return res.Serve(w, r)
}
