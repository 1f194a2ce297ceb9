package clientca

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"math/big"
	"strings"
	"testing"
)

// TestCSRKeyPolicyBounds: RSA keys are accepted from MinRSABits to
// MaxRSABits inclusive, and keys of no accepted type are refused with
// their type named. The RSA moduli are built, not generated: only their
// size is checked before the CSR's signature.
func TestCSRKeyPolicyBounds(t *testing.T) {
	modulus := func(bits int) *rsa.PublicKey {
		n := new(big.Int).Lsh(big.NewInt(1), uint(bits-1))
		return &rsa.PublicKey{N: n.Or(n, big.NewInt(1)), E: 65537}
	}
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		key  any
		want string // "" accepted, else part of the error
	}{
		"RSA at the minimum":    {modulus(MinRSABits), ""},
		"RSA at the maximum":    {modulus(MaxRSABits), ""},
		"RSA one bit too small": {modulus(MinRSABits - 1), "too small"},
		"RSA one bit too large": {modulus(MaxRSABits + 1), fmt.Sprintf("RSA key of %d bits is too large", MaxRSABits+1)},
		"X25519":                {x25519.PublicKey(), "*ecdh.PublicKey is not accepted"},
		"unsupported algorithm": {nil, "not supported"},
	} {
		err := checkCSRKey(tc.key)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}

// TestParseCSRNamesAWrongPEMTypeSafely: the client-chosen PEM type in the
// error is cut to 40 characters and stripped of control characters.
func TestParseCSRNamesAWrongPEMTypeSafely(t *testing.T) {
	long := strings.Repeat("X", 50)
	for typ, want := range map[string]string{
		"CERTIFICATE":           `"CERTIFICATE"`,
		long:                    `"` + strings.Repeat("X", 40) + `…"`,
		strings.Repeat("Y", 40): `"` + strings.Repeat("Y", 40) + `"`,
		"A\x01B\x1fC\x7fD":      `"ABCD"`,
	} {
		_, err := ParseCSR(pemOf(typ, []byte{1}))
		if err == nil || !strings.Contains(err.Error(), "PEM block type is "+want) {
			t.Errorf("type %q: %v, want it named as %s", typ, err, want)
		}
	}
}

// TestIssuedPrintsNoKeyMaterial: an Issued value printed with %v or %#v
// shows the certificate's identity and whether a key was generated, never
// the key.
func TestIssuedPrintsNoKeyMaterial(t *testing.T) {
	if s := fmt.Sprint(Issued{}); s != "clientca.Issued{}" {
		t.Errorf("empty Issued prints %q", s)
	}
	f := newFixture(t)
	iss := f.issue(t, Request{ClientID: "p1", Role: RoleProxy})
	for _, s := range []string{fmt.Sprintf("%v", *iss), fmt.Sprintf("%#v", *iss)} {
		if strings.Contains(s, "PRIVATE KEY") || !strings.Contains(s, `subject="p1"`) || !strings.Contains(s, "server_key=true") ||
			!strings.Contains(s, iss.SerialHex) {
			t.Errorf("printed as %s", s)
		}
	}
	root, err := f.issuer.Root(context.Background())
	if err != nil || !root.Equal(f.root) {
		t.Errorf("Root() = %v, %v; want the stored root", root, err)
	}
}
