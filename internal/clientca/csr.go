package clientca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// MaxCSRSize bounds the PEM input of ParseCSR. The largest CSR we accept
// (RSA-8192) is under 4 KiB of PEM; the bound keeps parsing cheap for
// hostile input.
const MaxCSRSize = 64 << 10

// ErrCSRKey and ErrCSRSignature are wrapped, beside ErrBadCSR, by the
// refusal of a well-formed CSR whose key is of a type or size not accepted
// and of one whose self-signature does not verify, so an API can answer
// each with its own code.
var (
	ErrCSRKey       = errors.New("public key not accepted")
	ErrCSRSignature = errors.New("signature does not verify")
)

// RSA key sizes accepted in a CSR. The upper bound keeps a hostile CSR from
// making signature checks (ours and every verifier's) expensive.
const (
	MinRSABits = 2048
	MaxRSABits = 8192
)

// ParseCSR decodes a PEM "CERTIFICATE REQUEST", parses it, checks its
// self-signature and that its public key is of an accepted type: ECDSA P-256
// or P-384, RSA of MinRSABits to MaxRSABits bits, or Ed25519. Every failure
// wraps ErrBadCSR with a distinct message; no message contains the input.
//
// Only the public key of the result is meant to be used: the subject and the
// extensions a client asks for are ignored by Issue.
func ParseCSR(pemBytes []byte) (*x509.CertificateRequest, error) {
	if len(pemBytes) == 0 {
		return nil, fmt.Errorf("%w: empty input", ErrBadCSR)
	}
	if len(pemBytes) > MaxCSRSize {
		return nil, fmt.Errorf("%w: input of %d bytes exceeds the limit of %d", ErrBadCSR, len(pemBytes), MaxCSRSize)
	}
	block, rest := pem.Decode(pemBytes)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block found (expected -----BEGIN CERTIFICATE REQUEST-----)", ErrBadCSR)
	}
	switch {
	case block.Type == "CERTIFICATE REQUEST", block.Type == "NEW CERTIFICATE REQUEST":
		// The second form is written by older OpenSSL and Windows tools.
	case strings.Contains(block.Type, "PRIVATE KEY"):
		// Say so explicitly: a client that sends its private key must
		// learn that it should not, and the key is never echoed.
		return nil, fmt.Errorf("%w: PEM block is a private key; send only the certificate request", ErrBadCSR)
	default:
		return nil, fmt.Errorf("%w: PEM block type is %q, want \"CERTIFICATE REQUEST\"", ErrBadCSR, sanitizePEMType(block.Type))
	}
	// Text before the block is tolerated (openssl req -text writes it),
	// anything after it is not: a second block might be a private key or
	// another request, and either way the client sent something else
	// than it thinks.
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: trailing data after the PEM block", ErrBadCSR)
	}
	if len(block.Headers) != 0 {
		return nil, fmt.Errorf("%w: PEM headers are not allowed (encrypted or legacy PEM?)", ErrBadCSR)
	}
	// Checked separately so that the message says what is wrong rather
	// than a generic ASN.1 error.
	var outer asn1.RawValue
	if rest, err := asn1.Unmarshal(block.Bytes, &outer); err == nil && len(rest) != 0 {
		return nil, fmt.Errorf("%w: trailing data after the DER-encoded request", ErrBadCSR)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		// crypto/x509's own messages ("x509: unsupported elliptic
		// curve") help the client; encoding/asn1's dump parser
		// internals and are replaced by a plain statement.
		if msg := err.Error(); strings.HasPrefix(msg, "x509: ") && len(msg) <= 120 {
			return nil, fmt.Errorf("%w: parsing DER: %s", ErrBadCSR, strings.TrimPrefix(msg, "x509: "))
		}
		return nil, fmt.Errorf("%w: parsing DER: not a well-formed PKCS#10 certificate request", ErrBadCSR)
	}
	if err := checkCSRKey(csr.PublicKey); err != nil {
		return nil, fmt.Errorf("%w: %w: %w", ErrBadCSR, ErrCSRKey, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: %w (request altered or not signed by its key): %w", ErrBadCSR, ErrCSRSignature, err)
	}
	return csr, nil
}

// checkCSRKey enforces the key types a client certificate may carry.
func checkCSRKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384():
			return nil
		}
		return fmt.Errorf("ECDSA curve %s is not accepted (use P-256 or P-384)", k.Curve.Params().Name)
	case *rsa.PublicKey:
		bits := k.N.BitLen()
		if bits < MinRSABits {
			return fmt.Errorf("RSA key of %d bits is too small (minimum %d)", bits, MinRSABits)
		}
		if bits > MaxRSABits {
			return fmt.Errorf("RSA key of %d bits is too large (maximum %d)", bits, MaxRSABits)
		}
		return nil
	case ed25519.PublicKey:
		return nil
	case nil:
		return fmt.Errorf("public key algorithm is not supported")
	default:
		return fmt.Errorf("public key type %T is not accepted (use ECDSA P-256/P-384, RSA >= %d or Ed25519)", pub, MinRSABits)
	}
}

// sanitizePEMType keeps a client-chosen PEM type printable and short before
// it goes into an error message.
func sanitizePEMType(t string) string {
	const maxLen = 40
	if len(t) > maxLen {
		t = t[:maxLen] + "…"
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, t)
}
