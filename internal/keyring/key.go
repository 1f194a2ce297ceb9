package keyring

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// KeySize is the length in bytes of every key: AES-256.
const KeySize = 32

// maxIDLen bounds key ids so that the id length fits the envelope's
// one-byte length field with room to spare.
const maxIDLen = 64

// Key is one AES-256 key and its id. Keys are made by [Generate] or read
// from a keyring file; the zero Key is not a usable key.
//
// Every way of printing or encoding a Key shows only its id and creation
// time, so a Key that ends up in a log line or an error does no harm. The
// key material leaves the process only through [WriteFile] and
// [Keyring.Marshal].
type Key struct {
	id       string
	created  time.Time
	material [KeySize]byte
}

// Generate makes a key with fresh random material. An empty id asks for a
// generated one: the UTC date and four random hex digits, e.g.
// "2026-11-24-a1b2", which sorts by age and rarely collides with another
// key made the same day ([Keyring.Add] refuses the collision).
func Generate(id string) (Key, error) {
	now := time.Now().UTC().Truncate(time.Second)
	if id == "" {
		var suffix [2]byte
		// crypto/rand.Read never fails (it crashes the program instead).
		_, _ = rand.Read(suffix[:])
		id = now.Format(time.DateOnly) + "-" + hex.EncodeToString(suffix[:])
	}
	if err := validateID(id); err != nil {
		return Key{}, fmt.Errorf("keyring: %w", err)
	}
	k := Key{id: id, created: now}
	_, _ = rand.Read(k.material[:])
	return k, nil
}

// ID returns the key's id, the value stored in envelopes it encrypts.
func (k Key) ID() string { return k.id }

// Created returns when the key was generated, or the zero time when the
// keyring file did not say.
func (k Key) Created() time.Time { return k.created }

// String describes the key without its material.
func (k Key) String() string {
	return fmt.Sprintf("keyring.Key(%q, [REDACTED])", k.id)
}

// GoString describes the key for %#v without its material.
func (k Key) GoString() string {
	return fmt.Sprintf("keyring.Key{ID: %q, Created: %q, Material: [REDACTED]}",
		k.id, k.created.Format(time.RFC3339))
}

// Format makes every fmt verb, including %x and %d which would otherwise
// dump the material byte by byte, print the redacted description.
func (k Key) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, k.GoString())
		return
	}
	_, _ = io.WriteString(f, k.String())
}

// MarshalJSON encodes the key's id and creation time only, so structured
// loggers that marshal values to JSON cannot leak the material.
func (k Key) MarshalJSON() ([]byte, error) {
	v := struct {
		ID      string    `json:"id"`
		Created time.Time `json:"created,omitzero"`
	}{k.id, k.created}
	return json.Marshal(v)
}

// validateID checks the id syntax of the keyring file. Its errors never
// repeat the id: a malformed "id" may well be key material pasted into
// the wrong field.
func validateID[T string | []byte](id T) error {
	switch {
	case len(id) == 0:
		return errors.New("id is empty")
	case len(id) > maxIDLen:
		return fmt.Errorf("id is %d characters long; at most %d are allowed", len(id), maxIDLen)
	}
	for i := 0; i < len(id); i++ {
		if !isIDChar(id[i]) {
			return fmt.Errorf("id has a character other than A-Z, a-z, 0-9, '.', '_', '-' at position %d", i+1)
		}
	}
	return nil
}

func isIDChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '.' || c == '_' || c == '-'
}
