// Package devicecrypto decrypts the messages devices send on the device
// channel (POST /api) and holds the RSA key pairs its sessions use.
//
// A device encrypts each message with a fresh AES key in CBC mode and
// wraps that key with its session's RSA public key; the envelope is JSON:
//
//	{"encryptedKey": "<base64>", "iv": "<base64>", "ciphertext": "<base64>", "minute": 29381234}
//
// CBC with PKCS#7 padding and RSA PKCS#1 v1.5 are both classic padding
// oracles: a server that answers "bad padding" differently from "bad
// message" lets an attacker decrypt a captured message one byte at a time.
// Open therefore gives one error, ErrDecrypt, for every failure after the
// envelope has been parsed (RSA padding, AES key length, CBC padding,
// plaintext format), and does the same work on every path: when the RSA
// step fails it carries on with a random AES key, and the CBC padding is
// checked in constant time. Parsing errors (bad JSON, bad base64, wrong
// lengths) depend only on what the sender wrote, never on a secret, so
// they are reported apart.
//
// The RSA padding is a per-deployment setting (Padding), because device
// libraries differ; several modes are never tried in turn, which would
// itself be an oracle.
//
// HPKE (RFC 9180, DHKEM-X25519 + HKDF-SHA256 + AES-256-GCM) is the
// recommended mode for new devices: authenticated encryption has no
// padding to probe.
//
// The package knows nothing of Caddy.
package devicecrypto
