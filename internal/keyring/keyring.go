package keyring

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
)

// Keyring is a set of keys of which the last one (the primary key)
// encrypts and all decrypt.
//
// A Keyring is safe for concurrent use. [Keyring.Add] and [Keyring.Remove]
// change the keyring in place: they swap in a new immutable snapshot, so
// an Encrypt or Decrypt running at the same time sees the keyring either
// entirely before or entirely after the change, and readers never wait
// for a lock.
//
// The zero Keyring is empty: it decrypts nothing and cannot encrypt until
// a key is added.
type Keyring struct {
	mu    sync.Mutex // serializes writers; readers only load state
	state atomic.Pointer[ring]
}

// ring is one immutable snapshot of a Keyring.
type ring struct {
	keys    []Key                  // file order; the last one is the primary
	aeads   map[string]cipher.AEAD // by key id
	primary cipher.AEAD
}

// NewKeyring returns a keyring of keys in the given order; the last key
// becomes the primary key. It fails if keys is empty, a key is the zero
// Key, or two keys share an id.
func NewKeyring(keys ...Key) (*Keyring, error) {
	r, err := newRing(keys)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	return fromRing(r), nil
}

func fromRing(r *ring) *Keyring {
	kr := new(Keyring)
	kr.state.Store(r)
	return kr
}

func newRing(keys []Key) (*ring, error) {
	if len(keys) == 0 {
		return nil, errors.New("no keys; a keyring needs at least one")
	}
	r := &ring{keys: slices.Clone(keys), aeads: make(map[string]cipher.AEAD, len(keys))}
	for i, k := range r.keys {
		if err := validateID(k.id); err != nil {
			return nil, fmt.Errorf("key %d: %w (make keys with Generate)", i+1, err)
		}
		if _, dup := r.aeads[k.id]; dup {
			return nil, fmt.Errorf("key %d (id %q): duplicate id", i+1, k.id)
		}
		block, err := aes.NewCipher(k.material[:])
		if err != nil {
			return nil, fmt.Errorf("key %d (id %q): %w", i+1, k.id, err)
		}
		// The random-nonce variant draws the 96-bit nonce itself and puts
		// it in front of the ciphertext, which is exactly the envelope's
		// layout after the header.
		aead, err := cipher.NewGCMWithRandomNonce(block)
		if err != nil {
			return nil, fmt.Errorf("key %d (id %q): %w", i+1, k.id, err)
		}
		r.aeads[k.id] = aead
		r.primary = aead
	}
	return r, nil
}

// Encrypt seals plaintext under the primary key and returns the envelope
// described in the package documentation. associatedData, the message id,
// must be passed again to Decrypt.
func (kr *Keyring) Encrypt(plaintext, associatedData []byte) ([]byte, error) {
	r := kr.state.Load()
	if r == nil {
		return nil, errors.New("keyring: cannot encrypt: the keyring has no keys")
	}
	id := r.keys[len(r.keys)-1].id
	out := make([]byte, 0, 2+len(id)+len(plaintext)+r.primary.Overhead())
	out = appendHeader(out, id)
	return r.primary.Seal(out, nil, plaintext, associatedData), nil
}

// Decrypt opens an envelope made by Encrypt with any key in the keyring.
// Every failure wraps [ErrDecrypt]; a key id that is not in the keyring
// also wraps [ErrUnknownKey].
func (kr *Keyring) Decrypt(envelope, associatedData []byte) ([]byte, error) {
	id, sealed, err := splitEnvelope(envelope)
	if err != nil {
		return nil, err
	}
	var aead cipher.AEAD
	if r := kr.state.Load(); r != nil {
		aead = r.aeads[string(id)]
	}
	if aead == nil {
		return nil, fmt.Errorf("%w: %w %q", ErrDecrypt, ErrUnknownKey, id)
	}
	plaintext, err := aead.Open(nil, nil, sealed, associatedData)
	if err != nil {
		return nil, ErrDecrypt
	}
	return plaintext, nil
}

// PrimaryID returns the id of the key that encrypts, or "" for an empty
// keyring.
func (kr *Keyring) PrimaryID() string {
	r := kr.state.Load()
	if r == nil {
		return ""
	}
	return r.keys[len(r.keys)-1].id
}

// IDs returns the key ids in file order, oldest first; the last one is
// the primary.
func (kr *Keyring) IDs() []string {
	r := kr.state.Load()
	if r == nil {
		return nil
	}
	ids := make([]string, len(r.keys))
	for i, k := range r.keys {
		ids[i] = k.id
	}
	return ids
}

// Has reports whether the keyring holds a key with the given id.
func (kr *Keyring) Has(id string) bool {
	r := kr.state.Load()
	return r != nil && r.aeads[id] != nil
}

// Add appends k to the keyring in place, making it the primary key: from
// the moment Add returns, Encrypt uses k, and envelopes under the older
// keys still decrypt. Persist the result with [WriteFile]. Add refuses
// the zero Key and an id already in the keyring.
func (kr *Keyring) Add(k Key) error {
	kr.mu.Lock()
	defer kr.mu.Unlock()
	var keys []Key
	if r := kr.state.Load(); r != nil {
		keys = r.keys
	}
	r, err := newRing(append(slices.Clip(keys), k))
	if err != nil {
		return fmt.Errorf("keyring: cannot add key: %w", err)
	}
	kr.state.Store(r)
	return nil
}

// Remove deletes the key with the given id from the keyring in place.
// Every envelope still under that key becomes undecryptable, so re-encrypt
// the stored bodies first ([KeyID] finds them). Removing the primary key
// makes the previous key the primary. Remove refuses to remove the last
// key, because a keyring without keys could not encrypt at all.
func (kr *Keyring) Remove(id string) error {
	kr.mu.Lock()
	defer kr.mu.Unlock()
	r := kr.state.Load()
	if r == nil || r.aeads[id] == nil {
		return fmt.Errorf("keyring: cannot remove key: %w %q", ErrUnknownKey, id)
	}
	if len(r.keys) == 1 {
		return fmt.Errorf("keyring: cannot remove key %q: it is the only key", id)
	}
	keys := slices.DeleteFunc(slices.Clone(r.keys), func(k Key) bool { return k.id == id })
	next, err := newRing(keys)
	if err != nil {
		return fmt.Errorf("keyring: cannot remove key %q: %w", id, err)
	}
	kr.state.Store(next)
	return nil
}

// selfTestPlaintext is long enough to span more than one AES block.
var selfTestPlaintext = []byte("keyring self-test: the quick brown fox jumps over the lazy dog")

// SelfTest encrypts and decrypts a probe with the primary key, for health
// checks: it fails for an empty keyring or if the round trip does not
// return the probe.
func (kr *Keyring) SelfTest() error {
	ad := []byte("keyring self-test")
	envelope, err := kr.Encrypt(selfTestPlaintext, ad)
	if err != nil {
		return fmt.Errorf("keyring self-test: %w", err)
	}
	got, err := kr.Decrypt(envelope, ad)
	if err != nil {
		return fmt.Errorf("keyring self-test: %w", err)
	}
	if !bytes.Equal(got, selfTestPlaintext) {
		return errors.New("keyring self-test: decryption returned different bytes")
	}
	return nil
}
