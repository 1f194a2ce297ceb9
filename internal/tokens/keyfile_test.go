package tokens

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func pemOf(t *testing.T, typ string, der []byte) []byte {
	t.Helper()
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// TestEd25519KeyFiles: a private key file gives a key that signs tokens
// its public key file verifies, with the same key id; a public key file
// alone cannot sign.
func TestEd25519KeyFiles(t *testing.T) {
	priv := newEd25519(t)
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	privFile, pubFile := filepath.Join(dir, "signing.pem"), filepath.Join(dir, "retired.pem")
	if err := os.WriteFile(privFile, pemOf(t, "PRIVATE KEY", privDER), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pubFile, pemOf(t, "PUBLIC KEY", pubDER), 0o600); err != nil {
		t.Fatal(err)
	}
	signing, err := LoadEd25519File(privFile)
	if err != nil {
		t.Fatal(err)
	}
	verifying, err := LoadEd25519File(pubFile)
	if err != nil {
		t.Fatal(err)
	}
	if signing.ID != verifying.ID || !strings.HasPrefix(signing.ID, "ed-") {
		t.Fatalf("key ids %q and %q, want the same ed- id", signing.ID, verifying.ID)
	}
	if _, err := New(Config{Signing: verifying}); err == nil {
		t.Fatal("a public key was accepted as the signing key")
	}
	tok := issue(t, newManager(t, Config{Signing: signing}), Access)
	other := newManager(t, Config{Signing: Ed25519Key(newEd25519(t)), Previous: []Key{verifying}})
	if _, err := other.Parse(tok, Access); err != nil {
		t.Fatalf("the public key file does not verify its private key's token: %v", err)
	}
}

// TestEd25519KeyFilesRefuseOtherKeys names what is wrong with a file that
// holds no Ed25519 key.
func TestEd25519KeyFilesRefuseOtherKeys(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecPriv, _ := x509.MarshalPKCS8PrivateKey(ec)
	ecPub, _ := x509.MarshalPKIXPublicKey(ec.Public())
	cases := map[string]struct {
		data []byte
		want string
	}{
		"not PEM":             {[]byte("hello"), "no PEM block"},
		"certificate":         {pemOf(t, "CERTIFICATE", []byte{1}), `"CERTIFICATE" is not an Ed25519 key`},
		"ECDSA private key":   {pemOf(t, "PRIVATE KEY", ecPriv), "not Ed25519"},
		"ECDSA public key":    {pemOf(t, "PUBLIC KEY", ecPub), "not Ed25519"},
		"corrupt private key": {pemOf(t, "PRIVATE KEY", []byte{1, 2}), "parsing private key"},
		"corrupt public key":  {pemOf(t, "PUBLIC KEY", []byte{1, 2}), "parsing public key"},
	}
	for name, tc := range cases {
		k, err := ParseEd25519PEM(tc.data)
		if err == nil || !strings.Contains(err.Error(), tc.want) || k.ID != "" {
			t.Errorf("%s: %+v, %v; want an error containing %q", name, k, err, tc.want)
		}
	}
	missing := filepath.Join(t.TempDir(), "missing.pem")
	if _, err := LoadEd25519File(missing); err == nil || !strings.Contains(err.Error(), "reading key file") {
		t.Errorf("missing file: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.pem")
	if err := os.WriteFile(bad, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadEd25519File(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("a bad file's error does not name it: %v", err)
	}
}
