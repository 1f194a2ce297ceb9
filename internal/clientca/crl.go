package clientca

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"path"
	"sort"
	"strings"
	"time"
)

// CRL reason codes (RFC 5280, section 5.3.1) that RevokedCert.Reason can
// name; any other text maps to ReasonUnspecified.
const (
	ReasonUnspecified          = 0
	ReasonKeyCompromise        = 1
	ReasonAffiliationChanged   = 3
	ReasonSuperseded           = 4
	ReasonCessationOfOperation = 5
)

// RevokedCert is one entry of a CRL.
type RevokedCert struct {
	// SerialHex is the revoked certificate's serial, in any form
	// ParseSerialHex accepts.
	SerialHex string

	// RevokedAt is when the certificate was revoked; it must be set.
	RevokedAt time.Time

	// Reason is free text from the revocation request; see ReasonCode.
	Reason string
}

// ReasonCode maps revocation reason text to an RFC 5280 CRLReason code. It
// recognises keyCompromise, affiliationChanged, superseded and
// cessationOfOperation, ignoring case and "_", "-" or " " separators
// (so "key_compromise" matches); everything else is ReasonUnspecified,
// which Go omits from the entry as RFC 5280 recommends.
func ReasonCode(reason string) int {
	norm := strings.ToLower(strings.NewReplacer("_", "", "-", "", " ", "").Replace(strings.TrimSpace(reason)))
	switch norm {
	case "keycompromise":
		return ReasonKeyCompromise
	case "affiliationchanged":
		return ReasonAffiliationChanged
	case "superseded":
		return ReasonSuperseded
	case "cessationofoperation":
		return ReasonCessationOfOperation
	default:
		return ReasonUnspecified
	}
}

// CRL returns a DER X.509 v2 CRL listing revoked, signed by the current
// client-issuing intermediate, with CRL number number, thisUpdate now and
// nextUpdate now+nextUpdate.
//
// Strict relying parties only accept a CRL from the issuer of the
// certificate being checked; after a rotation, publish a CRL per issuer
// (Intermediates, CRLForIssuer) until the previous intermediate's leaves
// have expired. The broker's own verifier checks revocation in its database
// and does not depend on CRLs.
func (i *Issuer) CRL(ctx context.Context, revoked []RevokedCert, number *big.Int, nextUpdate time.Duration) ([]byte, error) {
	kp, err := i.currentIntermediate(ctx)
	if err != nil {
		return nil, fmt.Errorf("creating CRL: %w", err)
	}
	return i.signCRL(kp, revoked, number, nextUpdate)
}

// CRLForIssuer is like CRL but signed by the client-issuing intermediate
// with serial issuerSerialHex, which may be the current one or one archived
// by rotation. It wraps fs.ErrNotExist when no such intermediate is stored.
func (i *Issuer) CRLForIssuer(ctx context.Context, issuerSerialHex string, revoked []RevokedCert, number *big.Int, nextUpdate time.Duration) ([]byte, error) {
	serial, err := ParseSerialHex(issuerSerialHex)
	if err != nil {
		return nil, fmt.Errorf("creating CRL: issuer serial: %w", err)
	}
	kp, err := i.currentIntermediate(ctx)
	if err != nil {
		return nil, fmt.Errorf("creating CRL: %w", err)
	}
	if kp.cert.SerialNumber.Cmp(serial) != 0 {
		s := SerialHex(serial)
		kp, err = i.loadPair(ctx, path.Join(i.prefixPrevious(), s+".crt"), path.Join(i.prefixPrevious(), s+".key"))
		if err != nil {
			return nil, fmt.Errorf("creating CRL for issuer %s: %w", s, err)
		}
	}
	return i.signCRL(kp, revoked, number, nextUpdate)
}

// CRLChain returns every CRL a relying party that checks each level of a
// client's chain needs: one per client-issuing intermediate whose leaves may
// still be in use (the current one first, then the archived ones, newest
// first), each listing revoked, followed by RootCRL. nginx's ssl_crl,
// HAProxy's crl-file and `openssl verify -crl_check_all` refuse every client
// with "unable to get certificate CRL" when a level has none. Serials are
// random, so listing every revoked serial in each issuer's CRL revokes
// nothing by mistake and spares recording which intermediate issued a leaf.
func (i *Issuer) CRLChain(ctx context.Context, revoked []RevokedCert, number *big.Int, nextUpdate time.Duration) ([][]byte, error) {
	intermediates, err := i.Intermediates(ctx)
	if err != nil {
		return nil, fmt.Errorf("creating CRLs: %w", err)
	}
	out := make([][]byte, 0, len(intermediates)+1)
	for _, inter := range intermediates {
		der, err := i.CRLForIssuer(ctx, SerialHex(inter.SerialNumber), revoked, number, nextUpdate)
		if err != nil {
			return nil, err
		}
		out = append(out, der)
	}
	root, err := i.RootCRL(ctx, number, nextUpdate)
	if err != nil {
		return nil, err
	}
	return append(out, root), nil
}

// RootCRL returns a CRL signed by the pki root that lists no certificate:
// the broker never revokes an intermediate (rotation archives the old one,
// whose leaves stay valid until they expire), but relying parties that check
// every level need a current CRL for the root→intermediate link too. The
// root key is read from storage for the signature and not kept, as for
// signing an intermediate.
func (i *Issuer) RootCRL(ctx context.Context, number *big.Int, nextUpdate time.Duration) ([]byte, error) {
	root, key, err := LoadRoot(ctx, i.cfg.Storage, i.cfg.CAID)
	if err != nil {
		return nil, fmt.Errorf("creating root CRL: %w", err)
	}
	return i.signCRL(&keyPair{cert: root, key: key}, nil, number, nextUpdate)
}

func (i *Issuer) signCRL(kp *keyPair, revoked []RevokedCert, number *big.Int, nextUpdate time.Duration) ([]byte, error) {
	if number == nil || number.Sign() < 0 {
		return nil, errors.New("creating CRL: CRL number must be a non-negative integer")
	}
	if nextUpdate <= 0 {
		return nil, fmt.Errorf("creating CRL: next update interval %s must be positive", nextUpdate)
	}

	entries := make([]x509.RevocationListEntry, 0, len(revoked))
	seen := make(map[string]bool, len(revoked))
	for n, r := range revoked {
		serial, err := ParseSerialHex(r.SerialHex)
		if err != nil {
			return nil, fmt.Errorf("creating CRL: entry %d: %w", n, err)
		}
		key := SerialHex(serial)
		if seen[key] {
			continue // listing a serial twice adds nothing
		}
		seen[key] = true
		if r.RevokedAt.IsZero() {
			return nil, fmt.Errorf("creating CRL: entry %s has no revocation time", key)
		}
		entries = append(entries, x509.RevocationListEntry{
			SerialNumber:   serial,
			RevocationTime: r.RevokedAt.UTC(),
			ReasonCode:     ReasonCode(r.Reason),
		})
	}
	// A stable order makes successive CRLs easy to diff.
	sort.Slice(entries, func(a, b int) bool { return entries[a].SerialNumber.Cmp(entries[b].SerialNumber) < 0 })

	now := i.now()
	tmpl := &x509.RevocationList{
		Number:                    number,
		ThisUpdate:                now,
		NextUpdate:                now.Add(nextUpdate),
		RevokedCertificateEntries: entries,
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, kp.cert, kp.key)
	if err != nil {
		return nil, fmt.Errorf("creating CRL signed by %q (serial %s): %w", kp.cert.Subject.CommonName, SerialHex(kp.cert.SerialNumber), err)
	}
	return der, nil
}
