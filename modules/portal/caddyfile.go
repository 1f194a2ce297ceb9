package portal

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/msgbroker/caddy-msgbroker/internal/caddyfileutil"
)

func init() {
	caddyfileutil.RegisterHandler("msgbroker_portal", func() caddyfileutil.Handler { return new(Handler) })
}

// UnmarshalCaddyfile parses the `msgbroker_portal` directive:
//
//	msgbroker_portal
//
// It takes no arguments and no block; tokens and lockouts are set in the
// msgbroker global option's tokens and login blocks.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return caddyfileutil.NoOptions(d, "msgbroker_portal", "its settings are the msgbroker global option's tokens and login blocks")
}

var _ caddyfile.Unmarshaler = (*Handler)(nil)
