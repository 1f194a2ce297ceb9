package broker

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/internal/clientca"
	"github.com/msgbroker/caddy-msgbroker/storage"
)

// Page sizes of the certificate list.
const (
	DefaultCertificatePageSize = 50
	MaxCertificatePageSize     = 200
)

// RevokeRequest asks to revoke one certificate (Serial) or every active
// certificate of a client (ClientID); exactly one is set. Reason is an
// RFC 5280 CRLReason name (see ReasonNames).
type RevokeRequest struct {
	Serial   string
	ClientID string
	Reason   string
}

// ReasonNames are the RFC 5280 CRLReason names a revocation over the
// admin API may give, as they appear in the CRL. The CA-level reasons
// (cACompromise, aACompromise), certificateHold and removeFromCRL do not
// apply to a leaf revoked for good; privilegeWithdrawn has no code in
// clientca.ReasonCode, so it is not offered either.
var ReasonNames = []string{"unspecified", "keyCompromise", "affiliationChanged", "superseded", "cessationOfOperation"}

// checkReasonName accepts an RFC 5280 reason name spelled exactly as the
// RFC does, so what the audit log and the clients table keep is the name
// the CRL carries.
func checkReasonName(name string) (string, error) {
	if slices.Contains(ReasonNames, name) {
		return name, nil
	}
	return "", apperr.New(apperr.Invalid, "invalid_reason", "reason must be one of the RFC 5280 names %s", strings.Join(ReasonNames, ", "))
}

// RevokeNamed revokes what req names, for the admin API. Unlike Revoke,
// whose target may be either a serial or a client id, the request says
// which it is, so a client id that happens to look like another
// certificate's serial cannot revoke the wrong certificate. Every attempt,
// refused ones included, is audited.
func (c *Certificates) RevokeNamed(ctx context.Context, actor Actor, req RevokeRequest) ([]storage.Client, error) {
	target := strings.TrimSpace(req.Serial)
	if target == "" {
		target = strings.TrimSpace(req.ClientID)
	}
	revoked, reason, err := c.revokeNamed(ctx, req)
	outcome, details := storage.AuditSuccess, "reason: "+reason
	if err != nil {
		outcome, details = storage.AuditFailure, errorSummary(err)
	}
	c.audit(ctx, actor, "certificate.revoke", clip(target, 255), outcome, details)
	return revoked, err
}

func (c *Certificates) revokeNamed(ctx context.Context, req RevokeRequest) ([]storage.Client, string, error) {
	serial, clientID := strings.TrimSpace(req.Serial), strings.TrimSpace(req.ClientID)
	if (serial == "") == (clientID == "") {
		return nil, "", apperr.New(apperr.Invalid, "missing_target", "give either serial or client_id, not both")
	}
	reason, err := checkReasonName(req.Reason)
	if err != nil {
		return nil, "", err
	}
	var candidates []storage.Client
	if serial != "" {
		candidates, err = c.bySerial(ctx, serial)
	} else {
		candidates, err = c.activeOf(ctx, clientID)
	}
	if err != nil {
		return nil, reason, err
	}
	revoked, err := c.revokeAll(ctx, candidates, reason)
	if err == nil && len(revoked) == 0 {
		err = apperr.New(apperr.Conflict, "already_revoked", "%s%s has no active certificate", serial, clientID)
	}
	return revoked, reason, err
}

// bySerial finds the active certificate with a serial, in any of the
// forms ParseSerialHex reads.
func (c *Certificates) bySerial(ctx context.Context, serial string) ([]storage.Client, error) {
	n, err := clientca.ParseSerialHex(serial)
	if err != nil {
		return nil, apperr.New(apperr.Invalid, "invalid_serial", "serial must be hexadecimal, with or without colons")
	}
	row, err := c.Store.Clients.GetBySerial(ctx, clientca.SerialHex(n))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, apperr.New(apperr.NotFound, "certificate_not_found", "no certificate with serial %s", clientca.SerialHex(n))
	}
	if err != nil {
		return nil, fmt.Errorf("looking up certificate %s: %w", serial, err)
	}
	if row.Status != storage.ClientActive {
		return nil, apperr.New(apperr.Conflict, "already_revoked", "certificate %s is already revoked", row.SerialNumber)
	}
	return []storage.Client{*row}, nil
}

// activeOf finds the active certificates of a client.
func (c *Certificates) activeOf(ctx context.Context, clientID string) ([]storage.Client, error) {
	if !clientca.ValidClientID(clientID) {
		return nil, apperr.New(apperr.Invalid, "invalid_client_id", "client_id is 1-64 characters of A-Z, a-z, 0-9, '.', '_', '-'")
	}
	active, found, err := c.activeCertificates(ctx, clientID)
	switch {
	case err != nil:
		return nil, err
	case !found:
		return nil, apperr.New(apperr.NotFound, "certificate_not_found", "client %s has no certificate", clientID)
	case len(active) == 0:
		return nil, apperr.New(apperr.Conflict, "already_revoked", "client %s has no active certificate", clientID)
	}
	return active, nil
}

// CertificateQuery is a certificate list request as the client sent it.
type CertificateQuery struct {
	// Status is active, revoked or expired.
	Status   string
	ClientID string
	// ExpiringWithin is a Go duration or a number of days ("30d"): keep
	// active certificates that expire within it.
	ExpiringWithin string
	Limit          string
	Cursor         string
	// Caller scopes the cursor to whoever listed.
	Caller string
}

// CertificateItem is one certificate as the admin API lists it.
type CertificateItem struct {
	ClientID          string     `json:"client_id"`
	Serial            string     `json:"serial"`
	FingerprintSHA256 string     `json:"fingerprint_sha256"`
	Role              string     `json:"role"`
	Status            string     `json:"status"`
	Subject           string     `json:"subject"`
	IssuedAt          time.Time  `json:"issued_at"`
	NotAfter          time.Time  `json:"not_after"`
	RevokedAt         *time.Time `json:"revoked_at"`
	RevocationReason  *string    `json:"revocation_reason"`
	CreatedBy         string     `json:"created_by"`
}

// CertificatePage is one page of the list; NextCursor is empty on the
// last.
type CertificatePage struct {
	Items      []CertificateItem `json:"items"`
	NextCursor string            `json:"next_cursor,omitempty"`
}

// CertificateItemOf describes a clients row; an active certificate past
// its not_after is shown as expired.
func CertificateItemOf(cl *storage.Client, now time.Time) CertificateItem {
	status := cl.Status
	if status == storage.ClientActive && cl.NotAfter.Before(now) {
		status = storage.ClientStateExpired
	}
	return CertificateItem{
		ClientID: cl.ClientID, Serial: cl.SerialNumber, FingerprintSHA256: cl.FingerprintSHA256, Role: cl.Role,
		Status: status, Subject: cl.Subject, IssuedAt: cl.IssuedAt, NotAfter: cl.NotAfter,
		RevokedAt: cl.RevokedAt, RevocationReason: cl.RevocationReason, CreatedBy: cl.CreatedBy,
	}
}

// List returns a page of certificates, newest first.
func (c *Certificates) List(ctx context.Context, q CertificateQuery) (CertificatePage, error) {
	f, err := certificateFilter(q, time.Now().UTC())
	if err != nil {
		return CertificatePage{}, err
	}
	// The scope holds the query as sent, not f: ExpiresBefore moves with
	// the clock, and a cursor must survive the seconds between pages.
	scope := fmt.Appendf(nil, "%s\x00%s\x00%s\x00%s\x00%d", q.Caller, f.State, f.ClientID, q.ExpiringWithin, f.Limit)
	cursors := cursorSealer{key: c.CursorKey, domain: "msgbroker certificate cursor", size: 8}
	if q.Cursor != "" {
		if f.BeforeID, err = openIDCursor(cursors, q.Cursor, scope); err != nil {
			return CertificatePage{}, err
		}
	}
	limit := f.Limit
	f.Limit = limit + 1
	rows, err := c.Store.Clients.ListPage(ctx, f)
	if err != nil {
		return CertificatePage{}, fmt.Errorf("listing certificates: %w", err)
	}
	page := CertificatePage{Items: make([]CertificateItem, 0, min(len(rows), limit))}
	for i := range rows {
		if i == limit {
			page.NextCursor = cursors.seal(binary.BigEndian.AppendUint64(nil, uint64(rows[i-1].ID)), scope)
			break
		}
		page.Items = append(page.Items, CertificateItemOf(&rows[i], f.Now))
	}
	return page, nil
}

func certificateFilter(q CertificateQuery, now time.Time) (storage.ClientPageFilter, error) {
	f := storage.ClientPageFilter{Now: now, Limit: DefaultCertificatePageSize}
	switch q.Status {
	case "", storage.ClientStateActive, storage.ClientStateRevoked, storage.ClientStateExpired:
		f.State = q.Status
	default:
		return f, apperr.New(apperr.Invalid, "invalid_status", "status must be active, revoked or expired")
	}
	if q.ClientID != "" && !clientca.ValidClientID(q.ClientID) {
		return f, apperr.New(apperr.Invalid, "invalid_client_id", "client_id is 1-64 characters of A-Z, a-z, 0-9, '.', '_', '-'")
	}
	f.ClientID = q.ClientID
	if q.ExpiringWithin != "" {
		d, err := parseWithin(q.ExpiringWithin)
		if err != nil {
			return f, err
		}
		f.ExpiresBefore = now.Add(d)
	}
	if q.Limit != "" {
		n, err := parseLimitMax(q.Limit, MaxCertificatePageSize)
		if err != nil {
			return f, err
		}
		f.Limit = n
	}
	return f, nil
}

// parseWithin reads "30d" (days) or a Go duration ("72h"), positive and
// at most ten years.
func parseWithin(v string) (time.Duration, error) {
	bad := apperr.New(apperr.Invalid, "invalid_expiring_within", "expiring_within is a number of days such as 30d or a duration such as 72h, up to 3650d")
	var d time.Duration
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := parseLimitMax(days, 3650)
		if err != nil {
			return 0, bad
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			return 0, bad
		}
	}
	if d <= 0 || d > 3650*24*time.Hour {
		return 0, bad
	}
	return d, nil
}

// openIDCursor opens a cursor whose payload is a row id (8 bytes, > 0).
func openIDCursor(cursors cursorSealer, cursor string, scope []byte) (int64, error) {
	raw, err := cursors.open(cursor, scope)
	if err != nil {
		return 0, err
	}
	id := int64(binary.BigEndian.Uint64(raw))
	if id <= 0 {
		return 0, errBadCursor
	}
	return id, nil
}
