// Package keyring encrypts message bodies at rest with AES-256-GCM under a
// set of keys that can be rotated without re-encrypting anything first.
//
// A [Keyring] holds one or more keys. The newest key (the last one in the
// file) is the primary key and encrypts every new body; every key in the
// ring decrypts. Rotation is therefore: add a key, reload, re-encrypt the
// stored bodies at leisure, and only then remove the old key.
//
// The package knows nothing of Caddy so the server, the admin CLI and the
// re-encrypt command share one implementation.
//
// # Keyring file
//
// A keyring file is JSON and must be readable only by the server's user
// (mode 0600; [CheckPermissions] reports anything looser):
//
//	{
//	  "version": 1,
//	  "keys": [
//	    {
//	      "id": "2026-05-02-9c41",
//	      "created": "2026-05-02T08:30:00Z",
//	      "key": "<standard base64 of 32 random bytes>"
//	    },
//	    {
//	      "id": "2026-11-24-a1b2",
//	      "created": "2026-11-24T10:00:00Z",
//	      "key": "<standard base64 of 32 random bytes>"
//	    }
//	  ]
//	}
//
// Fields:
//
//   - version: must be 1.
//   - keys: at least one key, oldest first. The last key encrypts new
//     bodies; all keys decrypt.
//   - id: unique within the file, 1 to 64 characters from A-Z, a-z, 0-9,
//     '.', '_' and '-'. The id is written into every envelope, so an id
//     must never be reused for different key material. Generated ids are
//     the UTC date and four random hex digits, e.g. "2026-11-24-a1b2".
//   - created: optional RFC 3339 time; informational only.
//   - key: exactly 32 bytes (AES-256), standard base64 with padding.
//
// Unknown fields are rejected so that a typo is not silently ignored.
// Errors in the file name the file, the key's position (counting from 1)
// and its id, but never any key material, e.g.
//
//	keyring /etc/msgbroker/keys.json: key 2 (id "x"): key must be 32 bytes, got 16
//
// # Envelope
//
// [Keyring.Encrypt] returns a binary envelope, stored as is in a BLOB
// column:
//
//	offset  size  content
//	0       1     version, 0x01
//	1       1     key id length n, 1..64
//	2       n     key id (ASCII)
//	2+n     12    random nonce
//	14+n    rest  AES-256-GCM ciphertext followed by the 16-byte tag
//
// The caller's associated data (the message id) is authenticated but not
// stored, so an envelope copied into another message's row does not
// decrypt. [KeyID] reads the key id without decrypting, which is how a
// re-encrypt job finds the bodies still under an old key.
package keyring
