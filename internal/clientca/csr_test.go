package clientca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
)

func csrDER(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "admin"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func pemOf(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func TestParseCSRAcceptsAllowedKeys(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	r2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	for name, key := range map[string]crypto.Signer{"p256": p256, "p384": p384, "rsa2048": r2048, "ed25519": ed} {
		der := csrDER(t, key)
		for _, in := range [][]byte{
			pemOf("CERTIFICATE REQUEST", der),
			pemOf("NEW CERTIFICATE REQUEST", der),
			append([]byte("Certificate Request:\n    Data: ...\n"), pemOf("CERTIFICATE REQUEST", der)...), // openssl -text
			append(pemOf("CERTIFICATE REQUEST", der), "\r\n\n"...),
		} {
			csr, err := ParseCSR(in)
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			if !publicKeysEqual(key.Public(), csr.PublicKey) {
				t.Errorf("%s: wrong public key", name)
			}
		}
	}
}

func TestParseCSRRejects(t *testing.T) {
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	good := csrDER(t, ed)

	badSig := bytes.Clone(good)
	badSig[len(badSig)-1] ^= 0x01
	badBody := bytes.Replace(good, []byte("admin"), []byte("admix"), 1)
	if bytes.Equal(badBody, good) {
		t.Fatal("test setup: CN not found in DER")
	}

	r1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	keyDER, _ := x509.MarshalPKCS8PrivateKey(ed)

	withHeaders := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: good})

	cases := []struct {
		name, class string
		in          []byte
	}{
		{"empty", "empty input", nil},
		{"not PEM", "no PEM block", []byte("MIIBhello this is not a CSR")},
		{"wrong PEM type", "PEM block type is \"CERTIFICATE\"", pemOf("CERTIFICATE", good)},
		{"private key", "is a private key", pemOf("PRIVATE KEY", keyDER)},
		{"garbage DER", "parsing DER", pemOf("CERTIFICATE REQUEST", []byte("\x30\x07garbage"))},
		{"random DER", "parsing DER", pemOf("CERTIFICATE REQUEST", []byte{0xde, 0xad, 0xbe, 0xef})},
		{"tampered signature", "signature does not verify", pemOf("CERTIFICATE REQUEST", badSig)},
		{"tampered subject", "signature does not verify", pemOf("CERTIFICATE REQUEST", badBody)},
		{"RSA-1024", "RSA key of 1024 bits is too small", pemOf("CERTIFICATE REQUEST", csrDER(t, r1024))},
		{"P-224", "curve P-224 is not accepted", pemOf("CERTIFICATE REQUEST", csrDER(t, p224))},
		{"P-521", "curve P-521 is not accepted", pemOf("CERTIFICATE REQUEST", csrDER(t, p521))},
		{"trailing data after PEM", "trailing data after the PEM block", append(pemOf("CERTIFICATE REQUEST", good), "extra"...)},
		{"second PEM block", "trailing data after the PEM block", append(pemOf("CERTIFICATE REQUEST", good), pemOf("PRIVATE KEY", keyDER)...)},
		{"trailing data in DER", "trailing data after the DER", pemOf("CERTIFICATE REQUEST", append(bytes.Clone(good), 0, 0))},
		{"PEM headers", "PEM headers", withHeaders},
		{"oversized", "exceeds the limit", bytes.Repeat([]byte("A"), MaxCSRSize+1)},
	}
	messages := map[string]string{} // message -> class
	f := newFixture(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCSR(tc.in)
			if !errors.Is(err, ErrBadCSR) {
				t.Fatalf("err = %v, want ErrBadCSR", err)
			}
			if !strings.Contains(err.Error(), tc.class) {
				t.Errorf("err = %q, want it to mention %q", err, tc.class)
			}
			if len(err.Error()) > 300 {
				t.Errorf("error message too long (echoes input?): %d bytes", len(err.Error()))
			}
			// Distinct failures get distinct messages.
			if prev, ok := messages[err.Error()]; ok && prev != tc.class {
				t.Errorf("message %q shared by classes %q and %q", err, prev, tc.class)
			}
			messages[err.Error()] = tc.class

			// Issue passes the same error through, still a 400.
			if len(tc.in) == 0 {
				return // empty CSRPEM means "generate a key"
			}
			_, err = f.issuer.Issue(context.Background(), Request{ClientID: "p1", Role: RoleProxy, CSRPEM: tc.in})
			if !errors.Is(err, ErrBadCSR) || errors.Is(err, ErrInvalidRequest) {
				t.Errorf("Issue err = %v, want ErrBadCSR", err)
			}
		})
	}
	classes, got := map[string]bool{}, map[string]bool{}
	for _, tc := range cases {
		classes[tc.class] = true
	}
	for _, c := range messages {
		got[c] = true
	}
	if len(got) != len(classes) {
		t.Errorf("got %d distinct failure messages' classes, want %d", len(got), len(classes))
	}
}

func FuzzParseCSR(f *testing.F) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	r2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	for _, key := range []crypto.Signer{p256, ed, r2048} {
		der := csrDER(f, key)
		f.Add(pemOf("CERTIFICATE REQUEST", der))
		f.Add(pemOf("CERTIFICATE REQUEST", der[:len(der)/2]))
		f.Add(append(pemOf("CERTIFICATE REQUEST", der), 'x'))
	}
	f.Add([]byte(""))
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\n-----END CERTIFICATE REQUEST-----\n"))
	f.Add(pemOf("CERTIFICATE", []byte{0x30, 0x00}))
	f.Fuzz(func(t *testing.T, data []byte) {
		csr, err := ParseCSR(data)
		if err != nil {
			if csr != nil {
				t.Fatal("result and error")
			}
			if !errors.Is(err, ErrBadCSR) {
				t.Fatalf("error %v does not wrap ErrBadCSR", err)
			}
			return
		}
		if csr == nil || csr.CheckSignature() != nil || checkCSRKey(csr.PublicKey) != nil {
			t.Fatal("accepted a CSR that fails its own checks")
		}
	})
}
