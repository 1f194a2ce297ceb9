package devicecrypto

import (
	"crypto/ecdh"
	"crypto/hpke"
	"encoding/json"
)

// HPKE mode: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM. The
// device seals each message in its own single-shot context:
//
//	{"enc": "<base64 32 bytes>", "ciphertext": "<base64>", "minute": 29381234}
//
// with info = HPKEInfo(user, device) and the minute's JSON text as
// associated data, so a message cannot be moved to another device or
// given another minute.

// EncSize is the size of an X25519 encapsulated key.
const EncSize = 32

// HPKEEnvelope is a parsed HPKE-mode message.
type HPKEEnvelope struct {
	Enc        []byte
	Ciphertext []byte
	Minute     string
	// aad is the minute's JSON text as sent.
	aad []byte
}

type rawHPKEEnvelope struct {
	Enc        *string         `json:"enc"`
	Ciphertext *string         `json:"ciphertext"`
	Minute     json.RawMessage `json:"minute"`
}

// ParseHPKEEnvelope parses an HPKE-mode envelope; the ciphertext (with
// its 16-byte tag) may be at most maxCiphertext bytes.
func ParseHPKEEnvelope(data []byte, maxCiphertext int) (*HPKEEnvelope, error) {
	if maxCiphertext <= 0 {
		maxCiphertext = DefaultMaxCiphertext
	}
	var raw rawHPKEEnvelope
	if err := decodeObject(data, &raw); err != nil {
		return nil, err
	}
	env := new(HPKEEnvelope)
	var err error
	if env.Enc, err = field("enc", raw.Enc, EncSize); err != nil {
		return nil, err
	}
	if len(env.Enc) != EncSize {
		return nil, malformed("enc must be %d bytes, got %d", EncSize, len(env.Enc))
	}
	if env.Ciphertext, err = field("ciphertext", raw.Ciphertext, maxCiphertext); err != nil {
		return nil, err
	}
	if env.Minute, err = parseMinute(raw.Minute); err != nil {
		return nil, err
	}
	env.aad = raw.Minute
	return env, nil
}

// HPKEInfo binds a message to its user and device.
func HPKEInfo(userID, deviceID string) []byte {
	info := make([]byte, 0, len("msgbroker device v1")+2+len(userID)+len(deviceID))
	info = append(info, "msgbroker device v1"...)
	info = append(info, 0)
	info = append(info, userID...)
	info = append(info, 0)
	return append(info, deviceID...)
}

// NewHPKEKey generates a session's X25519 key.
func NewHPKEKey() (*ecdh.PrivateKey, error) {
	return ecdh.X25519().GenerateKey(nil)
}

// OpenHPKE decrypts env with priv; every failure is ErrDecrypt.
func OpenHPKE(priv *ecdh.PrivateKey, info []byte, env *HPKEEnvelope) ([]byte, error) {
	k, err := hpke.NewDHKEMPrivateKey(priv)
	if err != nil {
		return nil, ErrDecrypt
	}
	r, err := hpke.NewRecipient(env.Enc, k, hpke.HKDFSHA256(), hpke.AES256GCM(), info)
	if err != nil {
		return nil, ErrDecrypt
	}
	plaintext, err := r.Open(env.aad, env.Ciphertext)
	if err != nil {
		return nil, ErrDecrypt
	}
	return plaintext, nil
}

// SealHPKE encrypts plaintext for pub as a device does; minute is the JSON
// text the envelope will carry. It is for clients and tests.
func SealHPKE(pub *ecdh.PublicKey, info, minute, plaintext []byte) (enc, ciphertext []byte, err error) {
	k, err := hpke.NewDHKEMPublicKey(pub)
	if err != nil {
		return nil, nil, err
	}
	enc, s, err := hpke.NewSender(k, hpke.HKDFSHA256(), hpke.AES256GCM(), info)
	if err != nil {
		return nil, nil, err
	}
	ciphertext, err = s.Seal(minute, plaintext)
	return enc, ciphertext, err
}
