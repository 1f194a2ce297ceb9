// Package sessions stores the device channel's state: open device sessions
// (with their private keys) and the messages devices delivered. Each has
// an in-process implementation for a single node and a Redis one for
// several; the original device server used Redis DB 2 for sessions and
// DB 1 for messages, and the defaults keep that.
//
// Private keys never reach Redis in the clear: they are sealed with the
// app's keyring, with the session's key as associated data, so a Redis
// dump (or a value copied to another session) reveals and unlocks nothing.
//
// The package knows nothing of Caddy.
package sessions

import (
	"context"
	"errors"
	"time"
)

// Errors of the stores.
var (
	ErrExists   = errors.New("session already exists")
	ErrNotFound = errors.New("session not found")
)

// Session modes.
const (
	ModeRSA  = "rsa"
	ModeHPKE = "hpke"
)

// Session is an open device session.
type Session struct {
	UserID   string `json:"user_id"`
	DeviceID string `json:"device_id"`
	// Mode is ModeRSA or ModeHPKE.
	Mode string `json:"mode"`
	// PrivateKey is the session's private key: PKCS#8 DER in RSA mode,
	// the 32 bytes of the X25519 key in HPKE mode.
	PrivateKey []byte    `json:"-"`
	CreatedAt  time.Time `json:"created_at"`
}

// Store holds open sessions by their key (user id + device id). A session
// expires after being idle for the store's TTL.
type Store interface {
	// Create stores s under key, or returns ErrExists if key has a
	// session, whose idle TTL it then restarts (as Get does: a device
	// asking to start its open session is using it).
	Create(ctx context.Context, key string, s *Session) error
	// Get returns the session under key and restarts its idle TTL, or
	// returns ErrNotFound.
	Get(ctx context.Context, key string) (*Session, error)
	// Delete removes the session under key, or returns ErrNotFound.
	Delete(ctx context.Context, key string) error
	// Fail counts a failed decryption in the session under key. At limit
	// failures the session is deleted and closed is true.
	Fail(ctx context.Context, key string, limit int) (closed bool, err error)
	// Count returns the number of open sessions.
	Count(ctx context.Context) (int64, error)
}

// Sealer encrypts private keys at rest (the app's keyring).
type Sealer interface {
	Encrypt(plaintext, associatedData []byte) ([]byte, error)
	Decrypt(envelope, associatedData []byte) ([]byte, error)
}

// Record is a delivered message as consumers read it: JSON under the
// message's id (the hex SHA-256 of the plaintext) and, when a stream is
// configured, in the stream's "record" field.
type Record struct {
	// ID is the lowercase hex SHA-256 of Data.
	ID       string `json:"id"`
	UserID   string `json:"user_id"`
	DeviceID string `json:"device_id"`
	// Minute is the envelope's minute as the device sent it.
	Minute     string    `json:"minute"`
	ReceivedAt time.Time `json:"received_at"`
	// Data is the decrypted message.
	Data string `json:"data"`
}

// MessageStore keeps delivered messages and finds duplicates.
type MessageStore interface {
	// Put stores r unless a message with its id is stored; duplicate
	// reports that one was.
	Put(ctx context.Context, r *Record) (duplicate bool, err error)
}
