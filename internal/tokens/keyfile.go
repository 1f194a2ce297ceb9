package tokens

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// LoadEd25519File reads an Ed25519 key from a PEM file: a PKCS #8 private
// key ("PRIVATE KEY", as `openssl genpkey -algorithm ed25519` writes) gives
// a key that signs; a PKIX public key ("PUBLIC KEY") one that only
// verifies, for a retired key.
func LoadEd25519File(path string) (Key, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Key{}, fmt.Errorf("tokens: reading key file: %w", err)
	}
	k, err := ParseEd25519PEM(data)
	if err != nil {
		return Key{}, fmt.Errorf("tokens: %s: %w", path, err)
	}
	return k, nil
}

// ParseEd25519PEM parses what LoadEd25519File reads.
func ParseEd25519PEM(data []byte) (Key, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return Key{}, errors.New("no PEM block")
	}
	switch block.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return Key{}, fmt.Errorf("parsing private key: %w", err)
		}
		priv, ok := k.(ed25519.PrivateKey)
		if !ok {
			return Key{}, fmt.Errorf("the private key is a %T, not Ed25519", k)
		}
		return Ed25519Key(priv), nil
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return Key{}, fmt.Errorf("parsing public key: %w", err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return Key{}, fmt.Errorf("the public key is a %T, not Ed25519", k)
		}
		return Ed25519PublicKey(pub), nil
	}
	return Key{}, fmt.Errorf("a PEM block of type %q is not an Ed25519 key", block.Type)
}
