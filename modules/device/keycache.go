package device

import (
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"sync"
)

// keyCache keeps parsed session keys. Parsing (and checking) a PKCS#8
// RSA key costs a noticeable part of a decryption, and every message of a
// session would pay it again. Entries are keyed by the session key and
// checked against the stored bytes, so a new session under the same key
// is never served an old key.
type keyCache struct {
	mu   sync.Mutex
	max  int
	keys map[string]cachedKey
}

type cachedKey struct {
	der  string
	priv *rsa.PrivateKey
}

func newKeyCache(max int) *keyCache {
	return &keyCache{max: max, keys: make(map[string]cachedKey)}
}

// get returns the parsed RSA key of session key whose PKCS#8 DER is der.
func (c *keyCache) get(key string, der []byte) (*rsa.PrivateKey, error) {
	c.mu.Lock()
	k, ok := c.keys[key]
	c.mu.Unlock()
	if ok && k.der == string(der) {
		return k.priv, nil
	}
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, err
	}
	priv, ok := parsed.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("session key is not RSA")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Dropping everything at the limit is crude but bounded; sessions
	// still open are parsed again on their next message.
	if len(c.keys) >= c.max {
		clear(c.keys)
	}
	c.keys[key] = cachedKey{der: string(der), priv: priv}
	return priv, nil
}
