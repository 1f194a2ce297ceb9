// Package clientca issues the client certificates that proxies and workers
// present to the broker's internal API.
//
// # Why a separate issuing intermediate
//
// Caddy's pki app keeps a CA per id in its storage: a long-lived root
// (pki/authorities/<id>/root.crt and root.key, 10 years by default) and a
// short-lived intermediate (7 days by default) that Caddy renews on its own
// and that `tls internal` uses, clamping every leaf to the intermediate's
// remaining lifetime. A proxy's client certificate issued for 365 days must
// be valid for 365 days and survive those renewals, so this package never
// signs with Caddy's intermediate. Instead it keeps its own long-lived
// client-issuing intermediate, signed by the same pki root:
//
//	pki root (Caddy, 10 y)
//	 ├── Caddy's intermediate (7 d, server certificates; not used here)
//	 └── client-issuing intermediate (this package, 5 y, ExtKeyUsage ClientAuth only)
//	      └── client leaf (≤ MaxLeafLifetime, default 365 d)
//
// The Caddy listener trusts only the root (`trust_pool pki_root { authority <id> }`)
// and clients present their leaf followed by the client-issuing intermediate
// (Issued.ChainPEM). Because the intermediate travels with the client, renewing
// or replacing either intermediate never invalidates a leaf; only replacing
// the root does.
//
// # Storage layout
//
// In the same certmagic.Storage as Caddy's pki app, with <id> sanitised the
// way Caddy does it (certmagic.StorageKeys.Safe):
//
//	msgbroker/client_ca/<id>/intermediate.crt      current intermediate (PEM CERTIFICATE)
//	msgbroker/client_ca/<id>/intermediate.key      its key (PEM, ECDSA P-256)
//	msgbroker/client_ca/<id>/previous/<serial>.crt intermediates replaced by rotation
//	msgbroker/client_ca/<id>/previous/<serial>.key their keys, kept to sign CRLs for their leaves
//
// The intermediate is created on first use under the storage lock
// "msgbroker_client_ca_<id>" so that several nodes sharing storage create only
// one; the state is re-read after the lock is acquired.
//
// # Rotation
//
// An intermediate is rotated when less than MaxLeafLifetime (default 400
// days) of its validity remains, so that a leaf of the longest permitted
// lifetime always fits inside the intermediate that signs it. With the
// 5-year default each intermediate therefore signs for about 3.9 years. The
// previous intermediate and its key are archived first (see above); its
// leaves keep working because their holders carry it in their chain file and
// the root has not changed. An intermediate's lifetime is clamped to the
// root's NotAfter; when the root itself is close to expiry, rotation cannot
// help, the current intermediate is kept, and leaves that would outlive it are
// refused (never silently shortened): rotate the root.
//
// MaxLeafLifetime defaults to 400 days rather than the 825 days once allowed
// for public TLS certificates: it admits the 365-day default plus a margin
// for clock skew and renewal overlap, and keeps the window in which a leaf
// outlives its issuing intermediate's successor short.
//
// # Identity in a leaf
//
// The client id is the subject CommonName. The role ("proxy" or "worker") is
// carried twice: as the subject OrganizationalUnit (readable by tools and TLS
// terminators that only look at the subject) and as the URI SAN
// "urn:msgbroker:role:<role>" (a SAN is authoritative: it cannot be confused
// with free-form subject text). The gateway itself takes a client's
// identity from the certificate registry (the database), never from the
// certificate.
//
// # Serial numbers
//
// SerialHex is the one canonical text form of a serial used throughout the
// broker: lowercase hexadecimal of the positive integer without leading zeros
// or separators (big.Int.Text(16)). ParseSerialHex accepts that form plus
// the usual variants (upper case, colons, leading zeros, "0x").
package clientca

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"path"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
)

// Roles a client certificate can carry. Registration of messages needs
// RoleProxy; delivery and status updates need RoleWorker.
const (
	RoleProxy  = "proxy"
	RoleWorker = "worker"
)

// Defaults applied by New when the Config leaves a field zero.
const (
	// DefaultIntermediateLifetime is the lifetime of a new client-issuing
	// intermediate (clamped to the root's NotAfter).
	DefaultIntermediateLifetime = 5 * 365 * 24 * time.Hour

	// DefaultMaxLeafLifetime is the longest lifetime a leaf may be issued
	// for and, equally, the remaining validity below which the intermediate
	// is rotated.
	DefaultMaxLeafLifetime = 400 * 24 * time.Hour

	// DefaultLeafLifetime is the lifetime of a leaf when Request.Lifetime
	// is zero.
	DefaultLeafLifetime = 365 * 24 * time.Hour

	// DefaultCAName matches the name Caddy's pki app gives a CA that has
	// none configured, so the intermediate's CN reads like Caddy's own.
	DefaultCAName = "Caddy Local Authority"
)

// MinLeafLifetime is the shortest lifetime a leaf may be issued for; anything
// shorter is almost certainly a unit mistake by the caller.
const MinLeafLifetime = time.Minute

// RoleURIPrefix prefixes the role in a leaf's URI SAN.
const RoleURIPrefix = "urn:msgbroker:role:"

// ErrInvalidRequest is wrapped by every error caused by the caller's input to
// Issue (client id, role, lifetime); callers map it to HTTP 400.
var ErrInvalidRequest = errors.New("invalid certificate request")

// ErrBadCSR is wrapped by every error ParseCSR (and Issue, for
// Request.CSRPEM) returns for an unusable certificate signing request;
// callers map it to HTTP 400.
var ErrBadCSR = errors.New("bad certificate signing request")

// ErrNoRoot is wrapped when the pki root certificate or key is not in storage,
// typically because the pki app has not provisioned the CA (yet).
var ErrNoRoot = errors.New("pki root not available")

// Config configures an Issuer.
type Config struct {
	// CAID is the id of the pki app's CA, e.g. "local". It is sanitised
	// with certmagic.StorageKeys.Safe, as Caddy does, to build storage keys.
	CAID string

	// Name is the human name of the CA used in the intermediate's CN,
	// "<Name> Client Issuing CA <yyyy>". Default DefaultCAName.
	Name string

	// Storage is Caddy's storage holding the pki CA; the client-issuing
	// intermediate is stored there too.
	Storage certmagic.Storage

	// IntermediateLifetime is the lifetime of a new client-issuing
	// intermediate, clamped to the root's NotAfter. It must be at least
	// twice MaxLeafLifetime so that each intermediate is used for a useful
	// period before it is rotated. Default DefaultIntermediateLifetime.
	IntermediateLifetime time.Duration

	// MaxLeafLifetime is the longest lifetime a leaf may be issued for;
	// longer requests are refused. It is also the rotation threshold of the
	// intermediate. Default DefaultMaxLeafLifetime.
	MaxLeafLifetime time.Duration

	// Now returns the current time. Default time.Now; tests move it.
	Now func() time.Time
}

// Issuer issues client certificates from a long-lived client-issuing
// intermediate below a Caddy pki root. It is safe for concurrent use, and
// several Issuers (in one process or on several nodes) may share storage.
type Issuer struct {
	cfg    Config
	safeID string

	// mu guards the cached root certificate and intermediate. The root
	// key is never cached: like Caddy's CA.RootKey, it is read from
	// storage only when an intermediate has to be signed.
	mu      sync.Mutex
	root    *x509.Certificate
	rootPEM []byte
	current *keyPair
}

// keyPair is an intermediate with its key. It has no String method and must
// never be formatted.
type keyPair struct {
	cert    *x509.Certificate
	certPEM []byte
	key     crypto.Signer
}

// New returns an Issuer for cfg after applying defaults and validating it. It
// does not touch storage: Caddy provisions the pki app (which creates the
// root) independently of our modules, so the root is loaded on first use.
func New(cfg Config) (*Issuer, error) {
	if cfg.Storage == nil {
		return nil, errors.New("clientca: no storage configured")
	}
	if cfg.CAID == "" {
		return nil, errors.New("clientca: no CA id configured")
	}
	safeID := certmagic.StorageKeys.Safe(cfg.CAID)
	if safeID == "" {
		return nil, fmt.Errorf("clientca: CA id %q is empty after sanitising", cfg.CAID)
	}
	if cfg.Name == "" {
		cfg.Name = DefaultCAName
	}
	if cfg.IntermediateLifetime == 0 {
		cfg.IntermediateLifetime = DefaultIntermediateLifetime
	}
	if cfg.MaxLeafLifetime == 0 {
		cfg.MaxLeafLifetime = DefaultMaxLeafLifetime
	}
	if cfg.MaxLeafLifetime < MinLeafLifetime {
		return nil, fmt.Errorf("clientca: max leaf lifetime %s is below the minimum %s", cfg.MaxLeafLifetime, MinLeafLifetime)
	}
	if cfg.IntermediateLifetime < 2*cfg.MaxLeafLifetime {
		// With a shorter intermediate the rotation threshold would be
		// reached almost immediately and every node would rotate
		// constantly.
		return nil, fmt.Errorf("clientca: intermediate lifetime %s must be at least twice the max leaf lifetime %s",
			cfg.IntermediateLifetime, cfg.MaxLeafLifetime)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Issuer{cfg: cfg, safeID: safeID}, nil
}

// String identifies the issuer without revealing any key material.
func (i *Issuer) String() string {
	return "clientca.Issuer(ca=" + i.safeID + ")"
}

// GoString is like String, so that %#v cannot print the cached key either.
func (i *Issuer) GoString() string { return i.String() }

// now is the issuer's clock truncated to whole seconds, the resolution of
// X.509 times, so that a lifetime is honoured exactly.
func (i *Issuer) now() time.Time {
	return i.cfg.Now().UTC().Truncate(time.Second)
}

func (i *Issuer) storagePrefix() string {
	return path.Join("msgbroker", "client_ca", i.safeID)
}

func (i *Issuer) keyIntermediateCert() string {
	return path.Join(i.storagePrefix(), "intermediate.crt")
}

func (i *Issuer) keyIntermediateKey() string {
	return path.Join(i.storagePrefix(), "intermediate.key")
}

func (i *Issuer) prefixPrevious() string {
	return path.Join(i.storagePrefix(), "previous")
}

func (i *Issuer) lockName() string {
	return "msgbroker_client_ca_" + i.safeID
}

// pkiPrefix mirrors caddypki's CA.storageKeyCAPrefix.
func pkiPrefix(safeID string) string {
	return path.Join("pki", "authorities", safeID)
}
