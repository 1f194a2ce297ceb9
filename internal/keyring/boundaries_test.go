package keyring

import (
	"fmt"
	"strings"
	"testing"
)

// Key ids are exactly the documented alphabet, at both ends of each range,
// and from 1 to maxIDLen characters long.
func TestIDAlphabetAndLengthBoundaries(t *testing.T) {
	for _, id := range []string{"a", "z", "A", "Z", "0", "9", ".", "_", "-", "az09AZ._-", strings.Repeat("k", maxIDLen)} {
		if err := validateID(id); err != nil {
			t.Errorf("validateID(%q) = %v, want accepted", id, err)
		}
	}
	for _, id := range []string{"", "`", "{", "@", "[", "/", ":", " ", "é", strings.Repeat("k", maxIDLen+1)} {
		if err := validateID(id); err == nil {
			t.Errorf("validateID(%q) accepted, want refused", id)
		}
	}
}

// A one-character key id survives an envelope round trip, and a two-byte
// envelope is refused for its id length, not for being short.
func TestEnvelopeIDLengthBoundaries(t *testing.T) {
	key, err := Generate("k")
	if err != nil {
		t.Fatal(err)
	}
	kr, err := NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := kr.Encrypt([]byte("body"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	if id, err := KeyID(sealed); err != nil || id != "k" {
		t.Fatalf("KeyID of a one-character id = %q, %v", id, err)
	}
	if plain, err := kr.Decrypt(sealed, []byte("aad")); err != nil || string(plain) != "body" {
		t.Fatalf("Decrypt = %q, %v", plain, err)
	}
	_, err = KeyID([]byte{envelopeVersion, 0})
	if err == nil || !strings.Contains(err.Error(), "key id length 0") {
		t.Fatalf("KeyID of a two-byte envelope = %v, want the id length named", err)
	}
	_, err = KeyID([]byte{envelopeVersion})
	if err == nil || !strings.Contains(err.Error(), "1 bytes is too short") {
		t.Fatalf("KeyID of a one-byte envelope = %v, want too short", err)
	}
}

// A wrongly typed value is reported at its own position, and an unknown
// field name of exactly maxShownField characters is still shown.
func TestFormatErrorPositionsAndShownNames(t *testing.T) {
	_, err := Parse([]byte("{\"keys\": 7}"))
	if err == nil || !strings.Contains(err.Error(), "line 1, column 10") {
		t.Fatalf("Parse of a number for keys = %v, want line 1, column 10", err)
	}
	name := strings.Repeat("n", maxShownField)
	_, err = Parse([]byte(`{"` + name + `": 1}`))
	if err == nil || !strings.Contains(err.Error(), name) {
		t.Fatalf("Parse with a %d-character unknown field = %v, want the name shown", maxShownField, err)
	}
	_, err = Parse([]byte(`{"` + name + `x": 1}`))
	if err == nil || strings.Contains(err.Error(), name) {
		t.Fatalf("Parse with a longer unknown field = %v, want the name hidden", err)
	}
}

// The longest allowed key id (maxIDLen) survives an envelope round trip.
func TestEnvelopeWithTheLongestID(t *testing.T) {
	id := strings.Repeat("k", maxIDLen)
	key, err := Generate(id)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := kr.Encrypt([]byte("body"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := KeyID(sealed); err != nil || got != id {
		t.Fatalf("KeyID = %q, %v", got, err)
	}
}

// %#v prints the Go-syntax description and %v the short one; neither
// shows material.
func TestKeyFormatVerbs(t *testing.T) {
	key, err := Generate("k1")
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%#v", key); !strings.HasPrefix(got, `keyring.Key{ID: "k1", Created: `) {
		t.Errorf("%%#v = %s", got)
	}
	if got := fmt.Sprintf("%v", key); got != `keyring.Key("k1", [REDACTED])` {
		t.Errorf("%%v = %s", got)
	}
}
