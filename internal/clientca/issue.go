package clientca

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// leafBackdate moves a leaf's NotBefore into the past so that a server whose
// clock is slightly behind the issuer's accepts a certificate immediately.
const leafBackdate = time.Minute

// clientIDPattern is the syntax of a client id, which becomes the subject CN.
var clientIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// Request asks for a client certificate.
type Request struct {
	// ClientID becomes the subject CommonName; it must match
	// [A-Za-z0-9._-]{1,64}.
	ClientID string

	// Role is RoleProxy or RoleWorker. It is carried both as the subject
	// OrganizationalUnit and as the URI SAN "urn:msgbroker:role:<role>"
	// (see the package documentation).
	Role string

	// Lifetime of the certificate from the moment of issuance. Zero means
	// DefaultLeafLifetime. Requests longer than Config.MaxLeafLifetime, or
	// that would outlive the issuing intermediate, are refused rather
	// than shortened.
	Lifetime time.Duration

	// CSRPEM is an optional PEM "CERTIFICATE REQUEST". Only its public key
	// is used, after its signature is checked; its subject and extensions
	// are ignored. When empty, the server generates an ECDSA P-256 key and
	// returns it in Issued.PrivateKeyPEM.
	CSRPEM []byte
}

// Issued is an issued client certificate. It contains the private key when
// the server generated it; String and GoString never print it.
type Issued struct {
	// Certificate is the parsed leaf.
	Certificate *x509.Certificate

	// CertificatePEM is the leaf alone.
	CertificatePEM []byte

	// ChainPEM is the leaf followed by the client-issuing intermediate:
	// what a client presents in the TLS handshake (Caddy trusts only the
	// pki root, so the intermediate must come from the client).
	ChainPEM []byte

	// CAPEM is the pki root the chain verifies against, for reference
	// (e.g. for other TLS terminators); the server's own certificate is
	// Caddy's business and need not chain to it.
	CAPEM []byte

	// PrivateKeyPEM is the PKCS#8 "PRIVATE KEY" when the server generated
	// the key, nil when the certificate was issued from a CSR. Hand it to
	// the client once and do not store or log it.
	PrivateKeyPEM []byte

	// SerialHex is the serial number in the canonical form of SerialHex.
	SerialHex string

	// FingerprintSHA256 is Fingerprint(Certificate).
	FingerprintSHA256 string
}

// String describes the certificate without any key material.
func (iss Issued) String() string {
	if iss.Certificate == nil {
		return "clientca.Issued{}"
	}
	return fmt.Sprintf("clientca.Issued{subject=%q serial=%s not_after=%s sha256=%s server_key=%t}",
		iss.Certificate.Subject.CommonName, iss.SerialHex,
		iss.Certificate.NotAfter.UTC().Format(time.RFC3339), iss.FingerprintSHA256, iss.PrivateKeyPEM != nil)
}

// GoString is like String, so that %#v cannot print the private key either.
func (iss Issued) GoString() string { return iss.String() }

// Issue issues a client certificate for req, signed by the current
// client-issuing intermediate (created or rotated first if necessary).
// Errors caused by the request wrap ErrInvalidRequest or ErrBadCSR.
func (i *Issuer) Issue(ctx context.Context, req Request) (*Issued, error) {
	if err := validateIdentity(req.ClientID, req.Role); err != nil {
		return nil, err
	}
	// The client id has been validated, so it is safe to echo from here on.
	iss, err := i.issue(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("issuing certificate for %s: %w", req.ClientID, err)
	}
	return iss, nil
}

func (i *Issuer) issue(ctx context.Context, req Request) (*Issued, error) {
	lifetime := req.Lifetime
	if lifetime == 0 {
		lifetime = DefaultLeafLifetime
	}
	if lifetime < MinLeafLifetime {
		return nil, fmt.Errorf("%w: lifetime %s is below the minimum %s", ErrInvalidRequest, lifetime, MinLeafLifetime)
	}
	if lifetime > i.cfg.MaxLeafLifetime {
		return nil, fmt.Errorf("%w: lifetime %s exceeds the maximum %s", ErrInvalidRequest, lifetime, i.cfg.MaxLeafLifetime)
	}

	var (
		pub    crypto.PublicKey
		keyPEM []byte
	)
	if len(req.CSRPEM) > 0 {
		csr, err := ParseCSR(req.CSRPEM)
		if err != nil {
			return nil, err
		}
		pub = csr.PublicKey
	} else {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generating key: %w", err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, fmt.Errorf("encoding generated key: %w", err)
		}
		pub, keyPEM = key.Public(), pemEncode("PRIVATE KEY", der)
	}

	inter, err := i.currentIntermediate(ctx)
	if err != nil {
		return nil, err
	}
	i.mu.Lock()
	root, rootPEM := i.root, i.rootPEM
	i.mu.Unlock()

	now := i.now()
	notAfter := now.Add(lifetime)
	if notAfter.After(inter.cert.NotAfter) {
		// Only possible when the root is near its end (the intermediate
		// is rotated while MaxLeafLifetime still fits otherwise).
		return nil, fmt.Errorf("%w: lifetime %s would end after the issuing intermediate expires at %s (the pki root expires at %s; rotate the root)",
			ErrInvalidRequest, lifetime, inter.cert.NotAfter.Format(time.RFC3339), root.NotAfter.Format(time.RFC3339))
	}

	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	notBefore := now.Add(-leafBackdate)
	if notBefore.Before(inter.cert.NotBefore) {
		// Keep the leaf inside its issuer's validity for strict
		// verifiers; only matters right after a root was created.
		notBefore = inter.cert.NotBefore
	}
	keyUsage := x509.KeyUsageDigitalSignature
	if _, ok := pub.(*rsa.PublicKey); ok {
		// RSA key exchange in TLS 1.2 needs it; ECDSA/Ed25519 keys
		// cannot encipher.
		keyUsage |= x509.KeyUsageKeyEncipherment
	}
	roleURI, err := url.Parse(RoleURIPrefix + req.Role)
	if err != nil {
		return nil, fmt.Errorf("building role URI: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:         req.ClientID,
			OrganizationalUnit: []string{req.Role},
		},
		URIs:                  []*url.URL{roleURI},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              keyUsage,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  false,
		AuthorityKeyId:        inter.cert.SubjectKeyId,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, inter.cert, pub, inter.key)
	if err != nil {
		return nil, fmt.Errorf("signing certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing issued certificate: %w", err)
	}
	certPEM := pemEncode("CERTIFICATE", der)
	chain := make([]byte, 0, len(certPEM)+len(inter.certPEM))
	chain = append(append(chain, certPEM...), inter.certPEM...)
	return &Issued{
		Certificate:       cert,
		CertificatePEM:    certPEM,
		ChainPEM:          chain,
		CAPEM:             append([]byte(nil), rootPEM...),
		PrivateKeyPEM:     keyPEM,
		SerialHex:         SerialHex(cert.SerialNumber),
		FingerprintSHA256: Fingerprint(cert),
	}, nil
}

// ValidClientID reports whether id is a syntactically valid client id.
func ValidClientID(id string) bool {
	return clientIDPattern.MatchString(id)
}

// ValidRole reports whether role is RoleProxy or RoleWorker.
func ValidRole(role string) bool {
	return role == RoleProxy || role == RoleWorker
}

// validateIdentity checks a client id and role without echoing an invalid id
// (it may be arbitrarily long or contain control characters).
func validateIdentity(clientID, role string) error {
	if !ValidClientID(clientID) {
		return fmt.Errorf("%w: client id must be 1-64 characters of A-Z a-z 0-9 . _ -", ErrInvalidRequest)
	}
	if !ValidRole(role) {
		return fmt.Errorf("%w: role must be %q or %q", ErrInvalidRequest, RoleProxy, RoleWorker)
	}
	return nil
}

// randomSerial returns a random positive 128-bit serial number.
func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("generating serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// SerialHex is the canonical text form of a certificate serial number used
// throughout the broker (database, API, logs, CRL input): lowercase
// hexadecimal without separators or leading zeros, i.e. big.Int.Text(16).
// It returns "" for nil.
func SerialHex(n *big.Int) string {
	if n == nil {
		return ""
	}
	return n.Text(16)
}

// ParseSerialHex parses a serial number written as SerialHex does, and also
// accepts the forms other tools print: upper case, colon or space
// separators, leading zeros and a "0x" prefix. SerialHex(ParseSerialHex(s))
// is the canonical form of s.
func ParseSerialHex(s string) (*big.Int, error) {
	clean := strings.NewReplacer(":", "", " ", "").Replace(strings.TrimSpace(s))
	clean = strings.TrimPrefix(strings.TrimPrefix(clean, "0x"), "0X")
	if clean == "" {
		return nil, errors.New("empty serial number")
	}
	if len(clean) > 64 { // generous for leading zeros; the octet limit is checked below
		return nil, errors.New("serial number longer than 20 octets")
	}
	for _, r := range clean {
		if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
			return nil, errors.New("serial number is not hexadecimal")
		}
	}
	n, ok := new(big.Int).SetString(clean, 16)
	if !ok {
		return nil, errors.New("serial number is not hexadecimal")
	}
	if n.Sign() == 0 {
		return nil, errors.New("serial number is zero")
	}
	if (n.BitLen()+7)/8 > 20 {
		return nil, errors.New("serial number longer than 20 octets")
	}
	return n, nil
}

// Fingerprint is the lowercase hexadecimal SHA-256 of the certificate's DER.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}
