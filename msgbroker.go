// Package caddymsgbroker registers every caddy-msgbroker module. Build a
// Caddy with all of them through
//
//	xcaddy build --with github.com/msgbroker/caddy-msgbroker
//
// or `go build -o caddy ./xcaddy` from this repository.
package caddymsgbroker

import (
	_ "github.com/msgbroker/caddy-msgbroker/internal/cli"
	_ "github.com/msgbroker/caddy-msgbroker/modules/adminapi"
	_ "github.com/msgbroker/caddy-msgbroker/modules/crl"
	_ "github.com/msgbroker/caddy-msgbroker/modules/device"
	_ "github.com/msgbroker/caddy-msgbroker/modules/docs"
	_ "github.com/msgbroker/caddy-msgbroker/modules/health"
	_ "github.com/msgbroker/caddy-msgbroker/modules/internalapi"
	_ "github.com/msgbroker/caddy-msgbroker/modules/msgbroker"
	_ "github.com/msgbroker/caddy-msgbroker/modules/portal"
	_ "github.com/msgbroker/caddy-msgbroker/modules/sqlstorage"
	_ "github.com/msgbroker/caddy-msgbroker/modules/trustpool"
	_ "github.com/msgbroker/caddy-msgbroker/modules/verifier"
)
