package sqlstorage

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

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
	if _, err := openSealer(filepath.Join(t.TempDir(), "missing.json"), zap.NewNop()); err == nil {
		t.Error("a missing keyring file was accepted")
	}
	if _, err := openSealer("{env.MSGBROKER_TEST_UNSET_KEYRING}", zap.NewNop()); err == nil {
		t.Error("an unset placeholder was accepted")
	}
}
