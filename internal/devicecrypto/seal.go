package devicecrypto

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
)

// Seal encrypts plaintext for pub as a device does and returns the JSON
// envelope. keySize is the AES key size (16, 24 or 32 bytes); minute is
// sent as a JSON number. It is for clients and tests.
func (p Padding) Seal(pub *rsa.PublicKey, keySize int, plaintext []byte, minute int64) ([]byte, error) {
	if !aesKeySize(keySize) {
		return nil, fmt.Errorf("AES key size must be 16, 24 or 32 bytes, got %d", keySize)
	}
	key := make([]byte, keySize)
	iv := make([]byte, IVSize)
	_, _ = rand.Read(key)
	_, _ = rand.Read(iv)
	var wrapped []byte
	var err error
	if p.Scheme == PKCS1v15 {
		//lint:ignore SA1019 the device side of the pkcs1v15 mode, for the tests and the example client
		wrapped, err = rsa.EncryptPKCS1v15(rand.Reader, pub, key)
	} else {
		wrapped, err = rsa.EncryptOAEPWithOptions(rand.Reader, pub, key, &rsa.OAEPOptions{Hash: p.hash(), MGFHash: p.MGFHash})
	}
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	pad := aes.BlockSize - len(plaintext)%aes.BlockSize
	buf := append(bytes.Clone(plaintext), bytes.Repeat([]byte{byte(pad)}, pad)...)
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(buf, buf)
	return json.Marshal(map[string]any{
		"encryptedKey": base64.StdEncoding.EncodeToString(wrapped),
		"iv":           base64.StdEncoding.EncodeToString(iv),
		"ciphertext":   base64.StdEncoding.EncodeToString(buf),
		"minute":       minute,
	})
}
