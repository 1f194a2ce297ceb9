package sqlstorage

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/msgbroker/caddy-msgbroker/internal/keyring"
)

// TestSealerReadsTheFileAgainForANewKey: keys rotate adds a key to the
// file and re-encrypts values with it while a config runs; the sealer
// loaded before must still read them.
func TestSealerReadsTheFileAgainForANewKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyring.json")
	kr, _, err := keyring.CreateIfMissing(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := openSealer(path, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	next, err := keyring.Generate("next")
	if err != nil {
		t.Fatal(err)
	}
	if err := kr.Add(next); err != nil {
		t.Fatal(err)
	}
	if err := keyring.WriteFile(path, kr); err != nil {
		t.Fatal(err)
	}
	sealed, err := kr.Encrypt([]byte("CA key"), []byte("ad"))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := s.Decrypt(sealed, []byte("ad"))
	if err != nil || !bytes.Equal(plain, []byte("CA key")) {
		t.Fatalf("Decrypt of a value under a key added to the file = %q, %v", plain, err)
	}
	if again, err := s.Encrypt([]byte("x"), nil); err != nil {
		t.Fatal(err)
	} else if id, _ := keyring.KeyID(again); id != "next" {
		t.Errorf("after reading the file again it encrypts with %q, want the new primary", id)
	}

	foreign, err := keyring.Generate("foreign")
	if err != nil {
		t.Fatal(err)
	}
	other, err := keyring.NewKeyring(foreign)
	if err != nil {
		t.Fatal(err)
	}
	alien, err := other.Encrypt([]byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Decrypt(alien, nil); !errors.Is(err, keyring.ErrUnknownKey) {
		t.Errorf("Decrypt under a key in no file = %v, want ErrUnknownKey", err)
	}
	// Encrypting follows the file too, without a value to read first.
	s.checkEvery = 0
	third, err := keyring.Generate("third")
	if err != nil {
		t.Fatal(err)
	}
	if err := kr.Add(third); err != nil {
		t.Fatal(err)
	}
	if err := keyring.WriteFile(path, kr); err != nil {
		t.Fatal(err)
	}
	if sealed, err := s.Encrypt([]byte("x"), nil); err != nil {
		t.Fatal(err)
	} else if id, _ := keyring.KeyID(sealed); id != "third" {
		t.Errorf("after keys rotate wrote the file, a write is sealed with %q, want the new primary", id)
	}
	// Within the interval it does not look.
	s.checkEvery = time.Hour
	fourth, _ := keyring.Generate("fourth")
	_ = kr.Add(fourth)
	if err := keyring.WriteFile(path, kr); err != nil {
		t.Fatal(err)
	}
	if sealed, _ := s.Encrypt([]byte("x"), nil); mustKeyID(t, sealed) != "third" {
		t.Error("the file was read again within the check interval")
	}
	if _, err := openSealer(filepath.Join(t.TempDir(), "missing.json"), zap.NewNop()); err == nil ||
		!strings.Contains(err.Error(), "missing.json does not exist. Caddy sets up its storage before any app") {
		t.Errorf("a missing keyring file: %v, want the explanation", err)
	}
	if _, err := openSealer("{env.MSGBROKER_TEST_UNSET_KEYRING}", zap.NewNop()); err == nil {
		t.Error("an unset placeholder was accepted")
	}
}

func mustKeyID(t *testing.T, envelope []byte) string {
	t.Helper()
	id, err := keyring.KeyID(envelope)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
