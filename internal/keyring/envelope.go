package keyring

import (
	"errors"
	"fmt"
)

const (
	envelopeVersion = 0x01
	nonceSize       = 12
	tagSize         = 16
)

// ErrDecrypt is returned, possibly wrapped, whenever [Keyring.Decrypt]
// cannot return the plaintext. A wrong key, a tampered envelope and wrong
// associated data all give this same error with no detail, so that an
// attacker probing with modified envelopes learns nothing. Structural
// problems (truncated envelope, unknown version) and unknown key ids are
// reported in the wrapped message because anyone holding the envelope
// can see them anyway.
var ErrDecrypt = errors.New("keyring: cannot decrypt")

// ErrUnknownKey is wrapped, together with the key id, by errors about a
// key id that is not in the keyring: an envelope written under a key
// that has since been removed, or [Keyring.Remove] of a missing id.
var ErrUnknownKey = errors.New("unknown key id")

// KeyID returns the id of the key that encrypted envelope, without
// decrypting it. It rejects anything that is not structurally an
// envelope with an error wrapping [ErrDecrypt].
func KeyID(envelope []byte) (string, error) {
	id, _, err := splitEnvelope(envelope)
	if err != nil {
		return "", err
	}
	return string(id), nil
}

// splitEnvelope returns the key id and the nonce+ciphertext+tag part of
// envelope. It checks structure only; authenticity is Open's job. The id
// stays a slice of envelope so that Decrypt's map lookup does not
// allocate.
func splitEnvelope(envelope []byte) (id, sealed []byte, err error) {
	if len(envelope) < 2 {
		return nil, nil, malformed("%d bytes is too short", len(envelope))
	}
	if envelope[0] != envelopeVersion {
		return nil, nil, malformed("unsupported version 0x%02x", envelope[0])
	}
	n := int(envelope[1])
	if n < 1 || n > maxIDLen {
		return nil, nil, malformed("key id length %d is outside 1..%d", n, maxIDLen)
	}
	if len(envelope) < 2+n+nonceSize+tagSize {
		return nil, nil, malformed("%d bytes is too short for a key id of %d bytes, a nonce and a tag", len(envelope), n)
	}
	id = envelope[2 : 2+n]
	if err := validateID(id); err != nil {
		// The id is not echoed: it did not pass validation, so it may
		// hold control characters that would corrupt a log line.
		return nil, nil, malformed("key %s", err)
	}
	return id, envelope[2+n:], nil
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: malformed envelope: %s", ErrDecrypt, fmt.Sprintf(format, args...))
}

// appendHeader appends the envelope header for key id to dst.
func appendHeader(dst []byte, id string) []byte {
	dst = append(dst, envelopeVersion, byte(len(id)))
	return append(dst, id...)
}
