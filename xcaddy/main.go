// Command caddy is Caddy with its standard modules and every caddy-msgbroker
// module. Build it with `go build -o caddy ./xcaddy`, or with xcaddy through
// ./xcaddy/build.sh; both give the same module set.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/msgbroker/caddy-msgbroker"
)

func main() {
	caddycmd.Main()
}
