package internalapi

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/msgbroker/caddy-msgbroker/internal/caddyfileutil"
)

func init() {
	caddyfileutil.RegisterHandler("msgbroker_internal", func() caddyfileutil.Handler { return new(Handler) })
}

// UnmarshalCaddyfile parses the `msgbroker_internal` directive:
//
//	msgbroker_internal
//
// It takes no arguments and no block; its limits are the msgbroker global
// option's max_request_bytes and max_body_chars.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return caddyfileutil.NoOptions(d, "msgbroker_internal", "its limits are set in the msgbroker global option")
}

var _ caddyfile.Unmarshaler = (*Handler)(nil)
