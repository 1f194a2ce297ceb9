package devicecrypto

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
)

// Envelope limits. An RSA-8192 ciphertext is 1024 bytes, the largest key
// a device could have been given.
const (
	// IVSize is the size of the AES-CBC initialization vector.
	IVSize = 16
	// MaxEncryptedKeySize bounds encryptedKey.
	MaxEncryptedKeySize = 1024
	// MaxMinuteSize bounds the text of minute.
	MaxMinuteSize = 64
	// DefaultMaxCiphertext is the ciphertext limit when none is configured.
	DefaultMaxCiphertext = 64 << 10
)

// ErrMalformed wraps every envelope parsing error.
var ErrMalformed = errors.New("malformed envelope")

// Envelope is a parsed RSA-mode message.
type Envelope struct {
	EncryptedKey []byte
	IV           []byte
	Ciphertext   []byte
	// Minute is minute as the device sent it: the text of a JSON number
	// or the contents of a JSON string.
	Minute string
}

// rawEnvelope is the wire form. Unknown fields are ignored: existing
// devices may send more than the server reads.
type rawEnvelope struct {
	EncryptedKey *string         `json:"encryptedKey"`
	IV           *string         `json:"iv"`
	Ciphertext   *string         `json:"ciphertext"`
	Minute       json.RawMessage `json:"minute"`
}

// ParseEnvelope parses an RSA-mode envelope whose ciphertext may be at most
// maxCiphertext bytes once decoded (DefaultMaxCiphertext if 0).
func ParseEnvelope(data []byte, maxCiphertext int) (*Envelope, error) {
	if maxCiphertext <= 0 {
		maxCiphertext = DefaultMaxCiphertext
	}
	var raw rawEnvelope
	if err := decodeObject(data, &raw); err != nil {
		return nil, err
	}
	env := new(Envelope)
	var err error
	if env.EncryptedKey, err = field("encryptedKey", raw.EncryptedKey, MaxEncryptedKeySize); err != nil {
		return nil, err
	}
	if env.IV, err = field("iv", raw.IV, IVSize); err != nil {
		return nil, err
	}
	if len(env.IV) != IVSize {
		return nil, malformed("iv must be %d bytes, got %d", IVSize, len(env.IV))
	}
	if env.Ciphertext, err = field("ciphertext", raw.Ciphertext, maxCiphertext); err != nil {
		return nil, err
	}
	if len(env.Ciphertext)%IVSize != 0 {
		return nil, malformed("ciphertext must be a multiple of %d bytes, got %d", IVSize, len(env.Ciphertext))
	}
	if env.Minute, err = parseMinute(raw.Minute); err != nil {
		return nil, err
	}
	return env, nil
}

// decodeObject decodes one JSON object and nothing after it.
func decodeObject(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return malformed("not a JSON object: %v", err)
	}
	if dec.More() {
		return malformed("data after the JSON object")
	}
	return nil
}

// field decodes the standard base64 of a required, non-empty field of at
// most limit bytes. The encoded length is checked first, so an oversize
// field is refused before it is decoded.
func field(name string, v *string, limit int) ([]byte, error) {
	if v == nil || *v == "" {
		return nil, malformed("%s is missing", name)
	}
	// Line breaks (Android's Base64.DEFAULT wraps at 76 characters) are
	// skipped by the decoder, so allow for one per 76 characters.
	if max := base64.StdEncoding.EncodedLen(limit); len(*v) > max+max/76*2+2 {
		return nil, malformed("%s is longer than %d bytes", name, limit)
	}
	b, err := base64.StdEncoding.DecodeString(*v)
	if err != nil {
		return nil, malformed("%s is not standard base64", name)
	}
	if len(b) == 0 || len(b) > limit {
		return nil, malformed("%s must be 1 to %d bytes, got %d", name, limit, len(b))
	}
	return b, nil
}

// parseMinute accepts a JSON number or string, as device libraries send
// either; the server only stores it (and compares it with the clock when
// an acceptance window is configured: the device handler's minute_window).
func parseMinute(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", malformed("minute is missing")
	}
	if len(raw) > MaxMinuteSize {
		return "", malformed("minute is longer than %d characters", MaxMinuteSize)
	}
	switch c := raw[0]; {
	case c == '"':
		var text string
		if err := json.Unmarshal(raw, &text); err != nil || text == "" {
			return "", malformed("minute is not a non-empty JSON string")
		}
		return text, nil
	case c == '-' || c >= '0' && c <= '9':
		return string(raw), nil
	}
	return "", malformed("minute must be a number or a string")
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}
