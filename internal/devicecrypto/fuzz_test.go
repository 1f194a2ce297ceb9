package devicecrypto

import (
	"errors"
	"testing"
)

// FuzzOpen feeds arbitrary messages through parsing and decryption: neither
// may panic, parsing fails only with ErrMalformed, and decryption of what
// parses fails only with ErrDecrypt.
func FuzzOpen(f *testing.F) {
	p := mustPadding(f, OAEPSHA256, "", 0)
	msg, err := p.Seal(&key(f).PublicKey, 32, []byte("seed message"), 1)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(msg)
	f.Add([]byte(`{"encryptedKey":"AA==","iv":"AAAAAAAAAAAAAAAAAAAAAA==","ciphertext":"AAAAAAAAAAAAAAAAAAAAAA==","minute":"1"}`))
	f.Add([]byte(`{"minute":1e400}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := ParseEnvelope(data, 1024)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("parse error not ErrMalformed: %v", err)
			}
			return
		}
		if _, err := p.Open(key(t), env); err != nil && err != ErrDecrypt {
			t.Fatalf("open error not ErrDecrypt: %v", err)
		}
	})
}

// FuzzParseHPKEEnvelope: parsing never panics and fails only with
// ErrMalformed.
func FuzzParseHPKEEnvelope(f *testing.F) {
	f.Add([]byte(`{"enc":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","ciphertext":"AA==","minute":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := ParseHPKEEnvelope(data, 1024); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("parse error not ErrMalformed: %v", err)
		}
	})
}
