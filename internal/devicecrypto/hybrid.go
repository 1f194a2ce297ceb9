package devicecrypto

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"errors"
	"fmt"
	"unicode/utf8"

	// The hashes a Padding may name.
	_ "crypto/sha1"
	_ "crypto/sha256"
)

// ErrDecrypt is the one error of every decryption failure.
var ErrDecrypt = errors.New("message could not be decrypted")

// Padding names.
const (
	OAEPSHA256 = "oaep-sha256"
	OAEPSHA1   = "oaep-sha1"
	PKCS1v15   = "pkcs1v15"
)

// Padding is how devices of a deployment wrap their AES keys with RSA.
type Padding struct {
	// Scheme is OAEPSHA256, OAEPSHA1 or PKCS1v15.
	Scheme string
	// MGFHash is OAEP's MGF1 hash when it differs from the label hash
	// (Android pairs SHA-256 with MGF1-SHA-1); zero means the same.
	MGFHash crypto.Hash
	// KeySize is the AES key size (16, 24 or 32) of PKCS1v15, which must
	// be fixed so that a bad padding cannot be told from a good one.
	KeySize int
}

// ParsePadding returns the padding named scheme (OAEPSHA256 if empty)
// with MGF1 hash mgf ("sha1", "sha256", or empty for the scheme's own) and,
// for PKCS1v15, the AES key size in bytes (32 if 0).
func ParsePadding(scheme, mgf string, keySize int) (Padding, error) {
	p := Padding{Scheme: scheme}
	switch scheme {
	case "":
		p.Scheme = OAEPSHA256
	case OAEPSHA256, OAEPSHA1:
	case PKCS1v15:
		if mgf != "" {
			return p, fmt.Errorf("an MGF1 hash applies to OAEP only")
		}
		p.KeySize = keySize
		if p.KeySize == 0 {
			p.KeySize = 32
		}
		if !aesKeySize(p.KeySize) {
			return p, fmt.Errorf("AES key size must be 16, 24 or 32 bytes, got %d", p.KeySize)
		}
		return p, nil
	default:
		return p, fmt.Errorf("unknown RSA padding %q (want %s, %s or %s)", scheme, OAEPSHA256, OAEPSHA1, PKCS1v15)
	}
	if keySize != 0 {
		return p, fmt.Errorf("a fixed AES key size applies to %s only", PKCS1v15)
	}
	switch mgf {
	case "":
	case "sha1":
		p.MGFHash = crypto.SHA1
	case "sha256":
		p.MGFHash = crypto.SHA256
	default:
		return p, fmt.Errorf("unknown MGF1 hash %q (want sha1 or sha256)", mgf)
	}
	return p, nil
}

func (p Padding) hash() crypto.Hash {
	if p.Scheme == OAEPSHA1 {
		return crypto.SHA1
	}
	return crypto.SHA256
}

func aesKeySize(n int) bool { return n == 16 || n == 24 || n == 32 }

// Open decrypts env with priv. Every failure returns ErrDecrypt after the
// same steps: RSA, AES-CBC over the whole ciphertext, a constant-time
// padding check and the plaintext check. The plaintext must be UTF-8, as
// devices send text.
func (p Padding) Open(priv *rsa.PrivateKey, env *Envelope) ([]byte, error) {
	if len(env.EncryptedKey) != priv.Size() || len(env.IV) != IVSize ||
		len(env.Ciphertext) == 0 || len(env.Ciphertext)%aes.BlockSize != 0 {
		// Sizes are public, so refusing them early says nothing secret.
		return nil, ErrDecrypt
	}
	key, ok := p.unwrap(priv, env.EncryptedKey)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, ErrDecrypt // unreachable: unwrap returns valid sizes
	}
	buf := make([]byte, len(env.Ciphertext))
	cipher.NewCBCDecrypter(block, env.IV).CryptBlocks(buf, env.Ciphertext)
	n, good := unpad(buf)
	good &= boolInt(utf8.Valid(buf[:n]))
	if ok&good != 1 {
		return nil, ErrDecrypt
	}
	return buf[:n], nil
}

// unwrap recovers the AES key. When that fails it returns a random key of
// a valid size and ok = 0, so the caller does the same work either way.
func (p Padding) unwrap(priv *rsa.PrivateKey, wrapped []byte) (key []byte, ok int) {
	if p.Scheme == PKCS1v15 {
		// On bad padding DecryptPKCS1v15SessionKey leaves key as it is
		// (random), in constant time; the message then fails the CBC and
		// plaintext checks as if the device had used that key.
		key = make([]byte, p.KeySize)
		_, _ = rand.Read(key)
		//lint:ignore SA1019 devices built on JSEncrypt or node-forge only speak PKCS #1 v1.5; it is used only when the operator chooses padding pkcs1v15, through the session-key API that hides the padding outcome
		if err := rsa.DecryptPKCS1v15SessionKey(nil, priv, wrapped, key); err != nil {
			return key, 0
		}
		return key, 1
	}
	fallback := make([]byte, 32)
	_, _ = rand.Read(fallback)
	k, err := priv.Decrypt(nil, wrapped, &rsa.OAEPOptions{Hash: p.hash(), MGFHash: p.MGFHash})
	if err != nil || !aesKeySize(len(k)) {
		return fallback, 0
	}
	return k, 1
}

// unpad checks PKCS#7 padding of a non-empty, block-aligned buf in constant
// time. It returns the plaintext length (len(buf) if the padding is bad)
// and 1 if the padding is good, 0 if not.
func unpad(buf []byte) (n, good int) {
	last := len(buf) - 1
	padLen := int(buf[last])
	good = subtle.ConstantTimeLessOrEq(1, padLen) & subtle.ConstantTimeLessOrEq(padLen, aes.BlockSize)
	for i := 0; i < aes.BlockSize; i++ {
		inPad := subtle.ConstantTimeLessOrEq(i+1, padLen)
		same := subtle.ConstantTimeByteEq(buf[last-i], byte(padLen))
		good &= same | (1 ^ inPad)
	}
	n = subtle.ConstantTimeSelect(good, len(buf)-padLen, len(buf))
	return n, good
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
