package phone

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"
)

// MinKeySize is the shortest key NewHasher accepts, in bytes.
const MinKeySize = 16

// Hasher computes keyed hashes of phone numbers: HMAC-SHA-256 under a
// secret key. A plain or salted SHA-256 would not do: there are few
// enough phone numbers to hash them all, so anyone with the database
// could reverse it; without the key they cannot.
//
// A Hasher is safe for concurrent use. Make one with [NewHasher]; the
// zero Hasher panics when used, rather than hashing with an empty key.
// Printing a Hasher shows no key.
//
// Its methods have value receivers so that printing a Hasher value, not
// just a pointer, goes through Format.
type Hasher struct {
	key []byte
}

// NewHasher returns a Hasher for key, which must be at least 16 bytes of
// secret random data. The key is copied. Changing the key changes every
// hash, so existing hashes no longer match their numbers.
func NewHasher(key []byte) (*Hasher, error) {
	if len(key) < MinKeySize {
		return nil, fmt.Errorf("phone: hash key must be at least %d bytes, got %d", MinKeySize, len(key))
	}
	return &Hasher{key: bytes.Clone(key)}, nil
}

// Hash returns the lowercase hex HMAC-SHA-256 of e164 under the Hasher's
// key. Pass the result of [Normalize]: other spellings of the same number
// hash differently.
func (h Hasher) Hash(e164 string) string {
	if len(h.key) == 0 {
		panic("phone: Hasher used without NewHasher")
	}
	mac := hmac.New(sha256.New, h.key)
	_, _ = io.WriteString(mac, e164)
	return hex.EncodeToString(mac.Sum(nil))
}

// Equal reports whether hash, as returned by Hash, is the hash of e164.
// The comparison takes the same time wherever the two differ.
func (h Hasher) Equal(hash, e164 string) bool {
	return subtle.ConstantTimeCompare([]byte(hash), []byte(h.Hash(e164))) == 1
}

// String describes the Hasher without its key.
func (h Hasher) String() string { return "phone.Hasher{key: [REDACTED]}" }

// GoString describes the Hasher for %#v without its key.
func (h Hasher) GoString() string { return h.String() }

// Format makes every fmt verb, including %x which would otherwise print
// the key in hex, show the redacted description.
func (h Hasher) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, h.String()) }
