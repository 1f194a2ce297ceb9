#!/usr/bin/env bash
# Builds the same binary as `go build -o caddy ./xcaddy`, but through xcaddy,
# the way a user adds our modules to their own Caddy build:
#
#   ./xcaddy/build.sh [output]        # default output: ./caddy
#   ./xcaddy/build.sh --check         # only install xcaddy if needed and run it
#
# It pins the Caddy version from go.mod and adds this checkout as the
# module github.com/msgbroker/caddy-msgbroker (at the zero pseudo-version, so
# Go resolves it through the replacement instead of asking the module proxy
# for a release).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/caddy}"
caddy_version="$(cd "$root" && go list -m -f '{{.Version}}' github.com/caddyserver/caddy/v2)"
xcaddy_version="v0.4.5"

if ! command -v xcaddy >/dev/null; then
	echo "installing xcaddy ${xcaddy_version}" >&2
	go install "github.com/caddyserver/xcaddy/cmd/xcaddy@${xcaddy_version}"
	# go install writes to GOBIN when set, else the first GOPATH entry's bin.
	gobin="$(go env GOBIN)"
	PATH="${gobin:-$(go env GOPATH | cut -d: -f1)/bin}:$PATH"
fi

if [ "${1:-}" = "--check" ]; then
	echo "xcaddy $(xcaddy version) at $(command -v xcaddy); would build Caddy ${caddy_version}"
	exit 0
fi

XCADDY_SKIP_CLEANUP=0 xcaddy build "$caddy_version" \
	--output "$out" \
	--with "github.com/msgbroker/caddy-msgbroker@v0.0.0-00010101000000-000000000000=$root"
