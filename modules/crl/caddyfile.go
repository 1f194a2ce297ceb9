package crl

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/msgbroker/caddy-msgbroker/internal/caddyfileutil"
)

func init() {
	caddyfileutil.RegisterHandler("msgbroker_crl", func() caddyfileutil.Handler { return new(Handler) })
}

// UnmarshalCaddyfile parses the `msgbroker_crl` directive:
//
//	msgbroker_crl
//
// It takes no arguments and no block.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return caddyfileutil.NoOptions(d, "msgbroker_crl", "")
}

var _ caddyfile.Unmarshaler = (*Handler)(nil)
