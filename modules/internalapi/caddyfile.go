package internalapi

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/msgbroker/caddy-msgbroker/internal/caddyfileutil"
)

func init() {
	caddyfileutil.RegisterHandler("msgbroker_internal", func() caddyfileutil.Handler { return new(Handler) })
}

// UnmarshalCaddyfile parses `msgbroker_internal`, which takes no arguments.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return caddyfileutil.NoOptions(d, "its limits are set in the msgbroker global option")
}

var _ caddyfile.Unmarshaler = (*Handler)(nil)
