package device

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/msgbroker/caddy-msgbroker/internal/caddyfileutil"
)

func init() {
	caddyfileutil.RegisterHandler("msgbroker_device", func() caddyfileutil.Handler { return new(Handler) })
}

// UnmarshalCaddyfile parses the `msgbroker_device` directive; its options
// are in the package documentation. It takes no arguments.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume the directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	return caddyfileutil.ParseBlock(d, "msgbroker_device", caddyfileutil.Options{
		"user_id_length":   caddyfileutil.Int(&h.UserIDLength),
		"directory":        h.parseDirectory,
		"store":            caddyfileutil.String(&h.Store),
		"sessions_db":      intPtr(&h.SessionsDB),
		"messages_db":      intPtr(&h.MessagesDB),
		"message_prefix":   caddyfileutil.String(&h.MessagePrefix),
		"stream":           caddyfileutil.String(&h.Stream),
		"session_ttl":      caddyfileutil.Duration(&h.SessionTTL),
		"message_ttl":      caddyfileutil.Duration(&h.MessageTTL),
		"memory_messages":  caddyfileutil.Int(&h.MemoryMessages),
		"padding":          caddyfileutil.String(&h.Padding),
		"mgf1_hash":        caddyfileutil.String(&h.MGF1Hash),
		"aes_key_size":     caddyfileutil.Int(&h.AESKeySize),
		"key_bits":         caddyfileutil.Int(&h.KeyBits),
		"key_pool":         caddyfileutil.Int(&h.KeyPool),
		"max_failures":     caddyfileutil.Int(&h.MaxFailures),
		"max_message_size": caddyfileutil.Size(&h.MaxMessageSize, 16<<20),
		"minute_window":    caddyfileutil.Duration(&h.MinuteWindow),
	})
}

// parseDirectory parses `directory builtin` or `directory wordpress { … }`.
func (h *Handler) parseDirectory(d *caddyfile.Dispenser) error {
	var kind string
	if !d.Args(&kind) || d.NextArg() {
		return d.ArgErr()
	}
	switch kind {
	case "builtin":
		h.Directory = kind
		if d.NextBlock(d.Nesting()) {
			return d.Errf("directory builtin takes no block, got '%s'", d.Val())
		}
		return nil
	case "wordpress":
		h.Directory = kind
		wp := new(WordPressConfig)
		h.WordPress = wp
		return caddyfileutil.ParseBlock(d, "directory wordpress", caddyfileutil.Options{
			"dsn":              caddyfileutil.String(&wp.DSN),
			"table_prefix":     caddyfileutil.String(&wp.TablePrefix),
			"uuid_meta_key":    caddyfileutil.String(&wp.UUIDKey),
			"devices_meta_key": caddyfileutil.String(&wp.DevicesKey),
			"id_field":         caddyfileutil.String(&wp.IDField),
			"name_field":       caddyfileutil.String(&wp.NameField),
			"status_field":     caddyfileutil.String(&wp.StatusField),
		})
	}
	return d.Errf("directory: expected builtin or wordpress, got '%s'", kind)
}

// intPtr is an Int option whose unset value stays distinguishable from 0
// (Redis database 0 is a valid choice).
func intPtr(dst **int) caddyfileutil.Option {
	return func(d *caddyfile.Dispenser) error {
		var n int
		if err := caddyfileutil.Int(&n)(d); err != nil {
			return err
		}
		*dst = &n
		return nil
	}
}

var _ caddyfile.Unmarshaler = (*Handler)(nil)
