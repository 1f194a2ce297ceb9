package adminapi

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/msgbroker/caddy-msgbroker/internal/caddyfileutil"
)

func init() {
	caddyfileutil.RegisterHandler("msgbroker_admin", func() caddyfileutil.Handler { return new(Handler) })
}

// UnmarshalCaddyfile parses the `msgbroker_admin` directive:
//
//	msgbroker_admin
//
// It takes no arguments and no block; its tokens are the msgbroker global
// option's tokens block, shared with the portal.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return caddyfileutil.NoOptions(d, "msgbroker_admin", "its tokens are the msgbroker global option's tokens block")
}

var _ caddyfile.Unmarshaler = (*Handler)(nil)
