package broker

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
)

// cursorMACSize is the length of a cursor's HMAC tag.
const cursorMACSize = 16

// A cursor is an opaque keyset position handed to the client: a payload
// (the last row's key) followed by an HMAC-SHA-256 tag over a domain that
// names the list, the payload and a scope (the caller and the filters), all
// base64url. The tag keeps clients from forging positions or carrying a
// cursor to another list, another caller or other filters; the payload is
// not secret. The portal's message list and the audit list share it.
type cursorSealer struct {
	key []byte
	// domain separates the lists' cursors under one key.
	domain string
	// size is the payload length of this list's cursors.
	size int
}

// seal encodes payload (of length c.size) bound to scope.
func (c cursorSealer) seal(payload, scope []byte) string {
	return base64.RawURLEncoding.EncodeToString(append(append([]byte(nil), payload...), c.mac(payload, scope)...))
}

// open checks a cursor against scope and returns its payload, or
// errBadCursor for anything this list with this scope did not issue.
func (c cursorSealer) open(cursor string, scope []byte) ([]byte, error) {
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	// The decoder skips CR and LF and tolerates stray low bits in the last
	// character; only the one encoding seal produces is a cursor.
	if err != nil || len(raw) != c.size+cursorMACSize || base64.RawURLEncoding.EncodeToString(raw) != cursor {
		return nil, errBadCursor
	}
	if !hmac.Equal(raw[c.size:], c.mac(raw[:c.size], scope)) {
		return nil, errBadCursor
	}
	return raw[:c.size], nil
}

func (c cursorSealer) mac(payload, scope []byte) []byte {
	mac := hmac.New(sha256.New, c.key)
	mac.Write([]byte(c.domain))
	mac.Write([]byte{0})
	mac.Write(payload)
	mac.Write(scope)
	return mac.Sum(nil)[:cursorMACSize]
}
