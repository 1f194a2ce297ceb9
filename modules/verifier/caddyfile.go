package verifier

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/msgbroker/caddy-msgbroker/internal/caddyfileutil"
)

// UnmarshalCaddyfile parses the verifier inside a tls client_auth block:
//
//	verifier msgbroker
//
// It takes no arguments and no block; its refresh interval is the msgbroker
// global option's revocation_poll_interval.
func (v *Verifier) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return caddyfileutil.NoOptions(d, "verifier msgbroker", "set revocation_poll_interval in the msgbroker global option")
}

var _ caddyfile.Unmarshaler = (*Verifier)(nil)
