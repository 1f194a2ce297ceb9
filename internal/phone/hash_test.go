package phone

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

func newHasher(t *testing.T, key []byte) *Hasher {
	t.Helper()
	h, err := NewHasher(key)
	if err != nil {
		t.Fatalf("NewHasher: %v", err)
	}
	return h
}

func TestHashIsHMACSHA256(t *testing.T) {
	// Computed independently with Python's hmac module.
	const want = "884c7273ba61654960e46c0e23208aa1b36656dccd87d9c5d3b712df7498bbdc"
	if got := newHasher(t, testKey).Hash("+4915200000000"); got != want {
		t.Fatalf("Hash = %s, want %s", got, want)
	}
}

func TestHashIsDeterministic(t *testing.T) {
	a, b := newHasher(t, testKey), newHasher(t, bytes.Clone(testKey))
	if a.Hash("+4915200000000") != b.Hash("+4915200000000") {
		t.Fatal("the same key and number gave different hashes")
	}
}

func TestHashDependsOnKeyAndNumber(t *testing.T) {
	h := newHasher(t, testKey)
	base := h.Hash("+4915200000000")
	otherKey := bytes.Clone(testKey)
	otherKey[0] ^= 1
	for name, got := range map[string]string{
		"other key":    newHasher(t, otherKey).Hash("+4915200000000"),
		"other number": h.Hash("+4915200000001"),
	} {
		if got == base {
			t.Errorf("%s gave the same hash", name)
		}
	}
}

func TestHashIsNotPlainSHA256(t *testing.T) {
	h := newHasher(t, testKey)
	for _, plain := range [][]byte{
		[]byte("+4915200000000"),
		append(bytes.Clone(testKey), "+4915200000000"...),
		append([]byte("+4915200000000"), testKey...),
	} {
		sum := sha256.Sum256(plain)
		if h.Hash("+4915200000000") == hex.EncodeToString(sum[:]) {
			t.Errorf("Hash equals SHA-256(%q)", plain)
		}
	}
}

func TestHashIsLowercaseHex(t *testing.T) {
	got := newHasher(t, testKey).Hash("+4915200000000")
	if len(got) != 64 || strings.Trim(got, "0123456789abcdef") != "" {
		t.Fatalf("Hash = %q, want 64 lowercase hex digits", got)
	}
}

func TestEqual(t *testing.T) {
	h := newHasher(t, testKey)
	hash := h.Hash("+4915200000000")
	tests := []struct {
		name, hash, number string
		want               bool
	}{
		{"matching number", hash, "+4915200000000", true},
		{"other number", hash, "+4915200000001", false},
		{"uppercase hash", strings.ToUpper(hash), "+4915200000000", false},
		{"truncated hash", hash[:63], "+4915200000000", false},
		{"empty hash", "", "+4915200000000", false},
	}
	for _, tt := range tests {
		if got := h.Equal(tt.hash, tt.number); got != tt.want {
			t.Errorf("%s: Equal = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestNewHasherRejectsShortKeys(t *testing.T) {
	for _, n := range []int{0, 1, MinKeySize - 1} {
		if _, err := NewHasher(make([]byte, n)); err == nil {
			t.Errorf("NewHasher accepted a %d-byte key", n)
		}
	}
	if _, err := NewHasher(make([]byte, MinKeySize)); err != nil {
		t.Errorf("NewHasher refused a %d-byte key: %v", MinKeySize, err)
	}
}

func TestNewHasherCopiesTheKey(t *testing.T) {
	key := bytes.Clone(testKey)
	h := newHasher(t, key)
	before := h.Hash("+4915200000000")
	key[0] ^= 1
	if h.Hash("+4915200000000") != before {
		t.Fatal("changing the caller's slice changed the Hasher")
	}
}

func TestZeroHasherPanicsInsteadOfHashingWithoutKey(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("the zero Hasher hashed")
		}
	}()
	var h Hasher
	h.Hash("+4915200000000")
}

func TestHasherFormattingRedactsKey(t *testing.T) {
	h := newHasher(t, testKey)
	outputs := []string{h.String(), h.GoString()}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		outputs = append(outputs, fmt.Sprintf(verb, h), fmt.Sprintf(verb, *h), fmt.Sprintf(verb, []*Hasher{h}))
	}
	leaks := []string{
		string(testKey[:8]),
		hex.EncodeToString(testKey[:4]),
		strings.ToUpper(hex.EncodeToString(testKey[:4])),
		fmt.Sprint(testKey[:4])[1:],
	}
	for _, out := range outputs {
		for _, leak := range leaks {
			if strings.Contains(out, leak) {
				t.Errorf("%q shows the key (%q)", out, leak)
			}
		}
	}
}
