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
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
)

// intermediateBackdate moves an intermediate's NotBefore into the past so that
// a verifier whose clock is slightly behind accepts it (and leaves, which are
// backdated by a minute, never start before their issuer).
const intermediateBackdate = 5 * time.Minute

// errDamaged marks a stored intermediate that was read successfully but is
// unusable (unparsable, or certificate and key do not belong together), as
// opposed to a storage failure, which must never cause a replacement.
var errDamaged = errors.New("stored intermediate is damaged")

// LoadRoot reads the root certificate and key of the pki app's CA caID from
// storage (pki/authorities/<id>/root.crt and root.key, PEM, as Caddy writes
// them). Errors name the missing storage key and wrap ErrNoRoot and
// fs.ErrNotExist when it is absent.
func LoadRoot(ctx context.Context, storage certmagic.Storage, caID string) (*x509.Certificate, crypto.Signer, error) {
	safeID := certmagic.StorageKeys.Safe(caID)
	cert, _, err := loadRootCert(ctx, storage, safeID)
	if err != nil {
		return nil, nil, err
	}
	key, err := loadRootKey(ctx, storage, safeID, cert)
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

func loadRootCert(ctx context.Context, storage certmagic.Storage, safeID string) (*x509.Certificate, []byte, error) {
	certKey := path.Join(pkiPrefix(safeID), "root.crt")
	certPEM, err := storage.Load(ctx, certKey)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("%w: root certificate %s not found in storage (is CA %q configured in the pki app?): %w",
				ErrNoRoot, certKey, safeID, err)
		}
		return nil, nil, fmt.Errorf("loading root certificate %s: %w", certKey, err)
	}
	cert, err := decodeCertificatePEM(certPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("parsing root certificate %s: %w", certKey, err)
	}
	if !cert.IsCA {
		return nil, nil, fmt.Errorf("root certificate %s is not a CA certificate", certKey)
	}
	return cert, pemEncode("CERTIFICATE", cert.Raw), nil
}

func loadRootKey(ctx context.Context, storage certmagic.Storage, safeID string, cert *x509.Certificate) (crypto.Signer, error) {
	keyKey := path.Join(pkiPrefix(safeID), "root.key")
	keyPEM, err := storage.Load(ctx, keyKey)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: root key %s not found in storage (is the root key held outside Caddy's storage?): %w",
				ErrNoRoot, keyKey, err)
		}
		return nil, fmt.Errorf("loading root key %s: %w", keyKey, err)
	}
	key, err := certmagic.PEMDecodePrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("decoding root key %s: %w", keyKey, err)
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, fmt.Errorf("root key %s does not match root certificate", keyKey)
	}
	return key, nil
}

// Root returns the pki root certificate the issuer chains to. It is read
// from storage once and then cached for the life of the Issuer (as Caddy
// caches it for the life of a config).
func (i *Issuer) Root(ctx context.Context) (*x509.Certificate, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	root, _, err := i.rootLocked(ctx)
	return root, err
}

// rootLocked returns the cached root, loading it on first use. A failed load
// is not cached, so a root created later by the pki app is picked up.
func (i *Issuer) rootLocked(ctx context.Context) (*x509.Certificate, []byte, error) {
	if i.root != nil {
		return i.root, i.rootPEM, nil
	}
	root, rootPEM, err := loadRootCert(ctx, i.cfg.Storage, i.safeID)
	if err != nil {
		return nil, nil, err
	}
	i.root, i.rootPEM = root, rootPEM
	return root, rootPEM, nil
}

// Intermediate returns the current client-issuing intermediate and its key,
// creating or rotating it first when necessary. The signer is for signing
// (certificates, CRLs) only; never log or serialise it.
func (i *Issuer) Intermediate(ctx context.Context) (*x509.Certificate, crypto.Signer, error) {
	kp, err := i.currentIntermediate(ctx)
	if err != nil {
		return nil, nil, err
	}
	return kp.cert, kp.key, nil
}

// Intermediates returns the current client-issuing intermediate followed by
// the archived (rotated-out) ones that have not expired yet, newest first:
// leaves of all of them may still be in use, so this is what a trust bundle
// or a per-issuer CRL publisher needs.
func (i *Issuer) Intermediates(ctx context.Context) ([]*x509.Certificate, error) {
	kp, err := i.currentIntermediate(ctx)
	if err != nil {
		return nil, err
	}
	out := []*x509.Certificate{kp.cert}
	keys, err := i.cfg.Storage.List(ctx, i.prefixPrevious(), false)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("listing previous client-issuing intermediates: %w", err)
	}
	now := i.now()
	var prev []*x509.Certificate
	for _, k := range keys {
		if !strings.HasSuffix(k, ".crt") {
			continue
		}
		certPEM, err := i.cfg.Storage.Load(ctx, k)
		if err != nil {
			return nil, fmt.Errorf("loading previous intermediate %s: %w", k, err)
		}
		cert, err := decodeCertificatePEM(certPEM)
		if err != nil {
			return nil, fmt.Errorf("parsing previous intermediate %s: %w", k, err)
		}
		if cert.SerialNumber.Cmp(kp.cert.SerialNumber) == 0 || !now.Before(cert.NotAfter) {
			continue
		}
		prev = append(prev, cert)
	}
	sort.Slice(prev, func(a, b int) bool { return prev[a].NotAfter.After(prev[b].NotAfter) })
	return append(out, prev...), nil
}

// currentIntermediate returns an intermediate fit for issuing now: from
// memory when the cached one is still fit, else from storage, else a new one
// made under the storage lock.
func (i *Issuer) currentIntermediate(ctx context.Context) (*keyPair, error) {
	i.mu.Lock()
	defer i.mu.Unlock()

	root, _, err := i.rootLocked(ctx)
	if err != nil {
		return nil, fmt.Errorf("client-issuing intermediate for CA %s: %w", i.safeID, err)
	}
	now := i.now()

	if i.current != nil && i.canIssueWith(i.current, root, now) {
		return i.current, nil
	}

	// Another node (or an earlier run) may have created or rotated it.
	// A read without the lock may see a half-written rotation (new key,
	// old certificate); loadIntermediate reports that as a mismatch and we
	// fall through to the locked path, where the writer has finished.
	if kp, err := i.loadIntermediate(ctx); err == nil && i.canIssueWith(kp, root, now) {
		i.current = kp
		return kp, nil
	}

	kp, err := i.createIntermediateLocked(ctx)
	if err != nil {
		return nil, fmt.Errorf("client-issuing intermediate for CA %s: %w", i.safeID, err)
	}
	i.current = kp
	return kp, nil
}

// canIssueWith reports whether kp may be used to issue at now: it is signed by root, is
// currently valid, and either has at least MaxLeafLifetime left or cannot be
// improved upon because the root expires first.
func (i *Issuer) canIssueWith(kp *keyPair, root *x509.Certificate, now time.Time) bool {
	if !signedBy(kp.cert, root) {
		return false
	}
	if now.Before(kp.cert.NotBefore) || !now.Before(kp.cert.NotAfter) {
		return false
	}
	if kp.cert.NotAfter.Sub(now) >= i.cfg.MaxLeafLifetime {
		return true
	}
	// Rotation only helps if a new intermediate would live longer; near
	// the root's end it would not, and rotating on every call would churn.
	return !i.newNotAfter(root, now).After(kp.cert.NotAfter)
}

// newNotAfter is the NotAfter a new intermediate made at now would get.
func (i *Issuer) newNotAfter(root *x509.Certificate, now time.Time) time.Time {
	notAfter := now.Add(i.cfg.IntermediateLifetime)
	if notAfter.After(root.NotAfter) {
		notAfter = root.NotAfter
	}
	return notAfter
}

// loadIntermediate reads the current intermediate from storage. It returns
// fs.ErrNotExist (wrapped) when there is none and an error when the stored
// certificate and key do not belong together.
func (i *Issuer) loadIntermediate(ctx context.Context) (*keyPair, error) {
	return i.loadPair(ctx, i.keyIntermediateCert(), i.keyIntermediateKey())
}

func (i *Issuer) loadPair(ctx context.Context, certKey, keyKey string) (*keyPair, error) {
	certPEM, err := i.cfg.Storage.Load(ctx, certKey)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", certKey, err)
	}
	keyPEM, err := i.cfg.Storage.Load(ctx, keyKey)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", keyKey, err)
	}
	cert, err := decodeCertificatePEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: parsing %s: %w", errDamaged, certKey, err)
	}
	key, err := certmagic.PEMDecodePrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: decoding %s: %w", errDamaged, keyKey, err)
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, fmt.Errorf("%w: %s does not match %s", errDamaged, keyKey, certKey)
	}
	return &keyPair{cert: cert, certPEM: pemEncode("CERTIFICATE", cert.Raw), key: key}, nil
}

// createIntermediateLocked (called with i.mu held) takes the storage lock,
// re-reads the root and the stored intermediate (another node may have just
// made one) and, if the intermediate is still missing, damaged or unfit,
// archives it and stores a new one.
func (i *Issuer) createIntermediateLocked(ctx context.Context) (kp *keyPair, err error) {
	if err := i.cfg.Storage.Lock(ctx, i.lockName()); err != nil {
		return nil, fmt.Errorf("acquiring storage lock %s: %w", i.lockName(), err)
	}
	defer func() {
		// Unlock even when ctx was cancelled meanwhile, or other nodes
		// would wait for the lock to expire.
		if uerr := i.cfg.Storage.Unlock(context.WithoutCancel(ctx), i.lockName()); uerr != nil && err == nil {
			err = fmt.Errorf("releasing storage lock %s: %w", i.lockName(), uerr)
		}
	}()

	// Read the root afresh: the cached certificate may predate a root the
	// pki app (re)created, and an intermediate must chain to the root
	// whose key signs it.
	root, rootPEM, err := loadRootCert(ctx, i.cfg.Storage, i.safeID)
	if err != nil {
		return nil, err
	}
	i.root, i.rootPEM = root, rootPEM

	now := i.now()
	old, loadErr := i.loadIntermediate(ctx)
	if loadErr == nil && i.canIssueWith(old, root, now) {
		return old, nil
	}
	switch {
	case loadErr == nil:
		// Unfit (rotation due, or signed by a replaced root): archive
		// and replace below.
	case errors.Is(loadErr, fs.ErrNotExist):
		old = nil
	case errors.Is(loadErr, errDamaged):
		// With the lock held no writer is active, so a mismatched
		// pair is the remains of an interrupted rotation (whose
		// predecessor was archived first) or damaged storage. A fresh
		// intermediate repairs it without invalidating any leaf.
		old = nil
	default:
		// A storage failure says nothing about the stored
		// intermediate; replacing it could lose a good key.
		return nil, loadErr
	}

	// The root key is read only now, when it is needed, and not kept.
	rootKey, err := loadRootKey(ctx, i.cfg.Storage, i.safeID, root)
	if err != nil {
		return nil, err
	}
	kp, err = i.newIntermediate(root, rootKey, now)
	if err != nil {
		return nil, err
	}

	// Order matters: archive the old pair first so its key is never lost
	// (it signs CRLs for its leaves), then the new key before the new
	// certificate, so that a reader seeing the new certificate finds its key.
	if old != nil {
		if err := i.archive(ctx, old); err != nil {
			return nil, err
		}
	}
	keyPEM, err := certmagic.PEMEncodePrivateKey(kp.key)
	if err != nil {
		return nil, fmt.Errorf("encoding intermediate key: %w", err)
	}
	if err := i.cfg.Storage.Store(ctx, i.keyIntermediateKey(), keyPEM); err != nil {
		return nil, fmt.Errorf("storing %s: %w", i.keyIntermediateKey(), err)
	}
	if err := i.cfg.Storage.Store(ctx, i.keyIntermediateCert(), kp.certPEM); err != nil {
		return nil, fmt.Errorf("storing %s: %w", i.keyIntermediateCert(), err)
	}
	return kp, nil
}

func (i *Issuer) archive(ctx context.Context, kp *keyPair) error {
	serial := SerialHex(kp.cert.SerialNumber)
	keyPEM, err := certmagic.PEMEncodePrivateKey(kp.key)
	if err != nil {
		return fmt.Errorf("encoding previous intermediate key %s: %w", serial, err)
	}
	keyKey := path.Join(i.prefixPrevious(), serial+".key")
	if err := i.cfg.Storage.Store(ctx, keyKey, keyPEM); err != nil {
		return fmt.Errorf("archiving %s: %w", keyKey, err)
	}
	certKey := path.Join(i.prefixPrevious(), serial+".crt")
	if err := i.cfg.Storage.Store(ctx, certKey, kp.certPEM); err != nil {
		return fmt.Errorf("archiving %s: %w", certKey, err)
	}
	return nil
}

// newIntermediate makes (but does not store) a client-issuing intermediate.
func (i *Issuer) newIntermediate(root *x509.Certificate, rootKey crypto.Signer, now time.Time) (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating intermediate key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	notBefore := now.Add(-intermediateBackdate)
	if notBefore.Before(root.NotBefore) {
		notBefore = root.NotBefore
	}
	notAfter := i.newNotAfter(root, now)
	if !notAfter.After(now) {
		return nil, fmt.Errorf("pki root expired at %s", root.NotAfter.Format(time.RFC3339))
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName: fmt.Sprintf("%s Client Issuing CA %d", i.cfg.Name, now.Year()),
		},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root, key.Public(), rootKey)
	if err != nil {
		return nil, fmt.Errorf("signing intermediate with pki root: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing new intermediate: %w", err)
	}
	return &keyPair{cert: cert, certPEM: pemEncode("CERTIFICATE", der), key: key}, nil
}

// signedBy reports whether cert was issued by parent.
func signedBy(cert, parent *x509.Certificate) bool {
	return bytes.Equal(cert.RawIssuer, parent.RawSubject) && cert.CheckSignatureFrom(parent) == nil
}

// publicKeysEqual compares public keys of the types certmagic can store.
func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	switch a.(type) {
	case *ecdsa.PublicKey, *rsa.PublicKey, ed25519.PublicKey:
		if e, ok := a.(equaler); ok {
			return e.Equal(b)
		}
	}
	return false
}

// decodeCertificatePEM decodes the first CERTIFICATE block of pemBytes.
func decodeCertificatePEM(pemBytes []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	if block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("PEM block is %q, want CERTIFICATE", block.Type)
	}
	return x509.ParseCertificate(block.Bytes)
}

func pemEncode(blockType string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der})
}
