// Package caddyfileutil holds the Caddyfile parsing our directives share.
package caddyfileutil

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Handler is an HTTP handler module that parses its own Caddyfile tokens.
type Handler interface {
	caddyhttp.MiddlewareHandler
	caddyfile.Unmarshaler
}

// RegisterHandler registers directive for handlers made by newHandler, and
// orders it before `respond` (ordering may anchor only on standard
// directives), so it can be used in a site without a route block.
func RegisterHandler(directive string, newHandler func() Handler) {
	httpcaddyfile.RegisterHandlerDirective(directive, func(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
		handler := newHandler()
		err := handler.UnmarshalCaddyfile(h.Dispenser)
		return handler, err
	})
	httpcaddyfile.RegisterDirectiveOrder(directive, httpcaddyfile.Before, "respond")
}

// NoOptions consumes a directive or module name that takes neither
// arguments nor a block; hint tells the user where settings go instead.
func NoOptions(d *caddyfile.Dispenser, hint string) error {
	d.Next() // consume the name
	name := d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	if d.NextBlock(0) {
		if hint != "" {
			return d.Errf("%s takes no options; %s", name, hint)
		}
		return d.Errf("%s takes no options", name)
	}
	return nil
}
