package docs

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/msgbroker/caddy-msgbroker/internal/caddyfileutil"
)

func init() {
	caddyfileutil.RegisterHandler("msgbroker_docs", func() caddyfileutil.Handler { return new(Handler) })
}

// UnmarshalCaddyfile parses `msgbroker_docs`, which takes no arguments.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return caddyfileutil.NoOptions(d, "")
}

var _ caddyfile.Unmarshaler = (*Handler)(nil)
