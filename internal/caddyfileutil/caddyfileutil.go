// Package caddyfileutil holds the Caddyfile parsing our directives share.
//
// Parsing is strict, as in mholt/caddy-l4 and mholt/caddy-ratelimit: an
// unknown option, a repeated option (which would otherwise silently
// replace the first) and a wrong number of arguments are errors, and every
// error quotes the offending token and names its file and line
// (Dispenser.Errf and Dispenser.ArgErr add them).
package caddyfileutil

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

// Handler is an HTTP handler module that parses its own Caddyfile tokens.
type Handler interface {
	caddyhttp.MiddlewareHandler
	caddyfile.Unmarshaler
}

// RegisterHandler registers directive for handlers made by newHandler, and
// orders it before `respond` (ordering may anchor only on standard
// directives), so it can be used in a site without a route block.
func RegisterHandler(directive string, newHandler func() Handler) {
	httpcaddyfile.RegisterHandlerDirective(directive, func(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
		handler := newHandler()
		err := handler.UnmarshalCaddyfile(h.Dispenser)
		return handler, err
	})
	httpcaddyfile.RegisterDirectiveOrder(directive, httpcaddyfile.Before, "respond")
}

// NoOptions consumes a directive or module name that takes neither
// arguments nor a block. name is how the user wrote it (e.g. "verifier
// msgbroker"); hint, if not empty, tells the user where settings go instead.
func NoOptions(d *caddyfile.Dispenser, name, hint string) error {
	d.Next() // consume the name
	if d.NextArg() {
		return d.ArgErr()
	}
	if d.NextBlock(0) {
		if hint != "" {
			return d.Errf("%s takes no options, got '%s' (%s)", name, d.Val(), hint)
		}
		return d.Errf("%s takes no options, got '%s'", name, d.Val())
	}
	return nil
}

// An Option parses the arguments (and any block) of one option; the
// dispenser is on the option's name.
type Option func(d *caddyfile.Dispenser) error

// Options are the options a block accepts, by name.
type Options map[string]Option

// ParseBlock parses the block that opens after the dispenser's current
// token. block names it in errors. Each option may appear once: a repeated
// option is an error, never a silent replacement of the first.
func ParseBlock(d *caddyfile.Dispenser, block string, options Options) error {
	seen := make(map[string]bool, len(options))
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		parse, ok := options[name]
		if !ok {
			return d.Errf("unrecognized %s option '%s'", block, name)
		}
		if seen[name] {
			return d.Errf("duplicate %s option '%s'", block, name)
		}
		seen[name] = true
		if err := parse(d); err != nil {
			return err
		}
	}
	return nil
}

// oneArg returns the single argument of the option the dispenser is on,
// which takes no block.
func oneArg(d *caddyfile.Dispenser) (string, error) {
	option := d.Val()
	var v string
	if !d.Args(&v) || d.NextArg() {
		return "", d.ArgErr()
	}
	return v, noBlock(d, option)
}

// noBlock refuses a block after an option that takes none; without it the
// block's first line would be reported as an unknown option named '{'.
func noBlock(d *caddyfile.Dispenser, option string) error {
	if d.NextBlock(d.Nesting()) {
		return d.Errf("%s takes no block, got '%s'", option, d.Val())
	}
	return nil
}

// valueErr reports a bad value of option, quoting it, at the value's line.
func valueErr(d *caddyfile.Dispenser, option, expected, got string) error {
	return d.Errf("%s: expected %s, got '%s'", option, expected, got)
}

// String is an option with one argument, stored as written (placeholders
// included, to be resolved at provisioning).
func String(dst *string) Option {
	return func(d *caddyfile.Dispenser) error {
		v, err := oneArg(d)
		*dst = v
		return err
	}
}

// Flag is an option without arguments that turns a setting on.
func Flag(dst *bool) Option {
	return func(d *caddyfile.Dispenser) error {
		option := d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
		*dst = true
		return noBlock(d, option)
	}
}

// Int is an option with one non-negative integer argument.
func Int(dst *int) Option {
	return func(d *caddyfile.Dispenser) error {
		option := d.Val()
		v, err := oneArg(d)
		if err != nil {
			return err
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return valueErr(d, option, "a non-negative integer", v)
		}
		*dst = n
		return nil
	}
}

// Size is an option with one byte size, such as 65536, 64KiB or 1MB,
// between 1 byte and max.
func Size(dst *int64, max uint64) Option {
	return func(d *caddyfile.Dispenser) error {
		option := d.Val()
		v, err := oneArg(d)
		if err != nil {
			return err
		}
		n, err := humanize.ParseBytes(v)
		if err != nil || n == 0 || n > max {
			return valueErr(d, option, "a size between 1B and "+humanize.IBytes(max), v)
		}
		*dst = int64(n)
		return nil
	}
}

// Duration is an option with one non-negative duration, in Caddy's syntax
// (time.ParseDuration plus days, e.g. 1d).
func Duration(dst *caddy.Duration) Option {
	return func(d *caddyfile.Dispenser) error {
		option := d.Val()
		v, err := oneArg(d)
		if err != nil {
			return err
		}
		dur, err := caddy.ParseDuration(v)
		if err != nil || dur < 0 {
			return valueErr(d, option, "a non-negative duration such as 1s or 30m", v)
		}
		*dst = caddy.Duration(dur)
		return nil
	}
}

// DurationOrOff is Duration that also takes off, for a setting whose zero
// value means "the default" and that can be disabled: off and a zero
// duration (what someone writing 0s means) are both stored as -1ns. A
// duration above max (when max > 0) is refused with the line.
func DurationOrOff(dst *caddy.Duration, max time.Duration) Option {
	return func(d *caddyfile.Dispenser) error {
		option := d.Val()
		v, err := oneArg(d)
		if err != nil {
			return err
		}
		if v == "off" {
			*dst = -1
			return nil
		}
		dur, err := caddy.ParseDuration(v)
		if err != nil || dur < 0 || max > 0 && dur > max {
			want := "a non-negative duration such as 1s, or off"
			if max > 0 {
				want = fmt.Sprintf("a duration from 0 (off) to %s, or off", max)
			}
			return valueErr(d, option, want, v)
		}
		*dst = caddy.Duration(dur)
		if dur == 0 {
			*dst = -1
		}
		return nil
	}
}

// OnOff is an option with one boolean argument: on or off (true and false
// are accepted too). It sets *dst, so unset stays distinguishable.
func OnOff(dst **bool) Option {
	return func(d *caddyfile.Dispenser) error {
		option := d.Val()
		v, err := oneArg(d)
		if err != nil {
			return err
		}
		var on bool
		switch v {
		case "on", "true":
			on = true
		case "off", "false":
		default:
			return valueErr(d, option, "on or off", v)
		}
		*dst = &on
		return nil
	}
}

// CheckHostPort refuses an address that is not host:port with a port from
// 1 to 65535 (an empty host means localhost). An address holding a runtime
// placeholder ({env.*}, {file.*}) where the port would be passes: it is
// only known once resolved.
func CheckHostPort(d *caddyfile.Dispenser, option, addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil && strings.Contains(addr, "{") || strings.Contains(port, "{") {
		return nil
	}
	if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 1 || n > 65535 {
		return valueErr(d, option, "host:port with a port from 1 to 65535", addr)
	}
	return nil
}
