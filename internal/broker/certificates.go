package broker

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/internal/clientca"
	"github.com/msgbroker/caddy-msgbroker/storage"
)

// Certificates issues and revokes client certificates: the one place that
// does it, for the admin API and the CLI alike. Every attempt is audited.
type Certificates struct {
	Store  *storage.Store
	Issuer *clientca.Issuer
	// Announce is called after a change with the serial, so the registry of
	// this node refreshes at once and other nodes hear of it (may be nil).
	Announce func(ctx context.Context, serial string)
	// Logger records issued and revoked certificates and audit writes that
	// failed (may be nil).
	Logger *zap.Logger
	// Issued and Revoked count certificates (may be nil).
	Issued, Revoked prometheus.Counter
	// CursorKey authenticates the list's paging cursors (at least 32
	// bytes; every node of a cluster needs the same).
	CursorKey []byte
}

// IssueRequest asks for a client certificate.
type IssueRequest struct {
	ClientID string
	Role     string
	// Days of validity; 0 means clientca.DefaultLeafLifetime.
	Days int
	// CSRPEM is an optional PEM certificate request; without it the server
	// generates the key and returns it once.
	CSRPEM []byte
}

// Actor says who acts and from where, for the audit log.
type Actor struct {
	Name       string
	RemoteAddr string
}

// Issue signs a certificate and records it in the clients table.
func (c *Certificates) Issue(ctx context.Context, actor Actor, req IssueRequest) (*clientca.Issued, *storage.Client, error) {
	issued, row, err := c.issue(ctx, actor, req)
	outcome, details := "success", ""
	if err != nil {
		outcome, details = "failure", errorSummary(err)
	}
	target := req.ClientID
	if row != nil {
		target = req.ClientID + " serial " + row.SerialNumber
	}
	c.audit(ctx, actor, "certificate.issue", target, outcome, details)
	return issued, row, err
}

func (c *Certificates) issue(ctx context.Context, actor Actor, req IssueRequest) (*clientca.Issued, *storage.Client, error) {
	if req.Days < 0 {
		return nil, nil, apperr.New(apperr.Invalid, "invalid_days", "days must be positive")
	}
	lifetime := clientca.DefaultLeafLifetime
	if req.Days > 0 {
		lifetime = time.Duration(req.Days) * 24 * time.Hour
	}
	issued, err := c.Issuer.Issue(ctx, clientca.Request{
		ClientID: req.ClientID, Role: req.Role, Lifetime: lifetime, CSRPEM: req.CSRPEM,
	})
	if err != nil {
		return nil, nil, issueError(err)
	}
	cert := issued.Certificate
	row := &storage.Client{
		ClientID:          req.ClientID,
		SerialNumber:      issued.SerialHex,
		FingerprintSHA256: issued.FingerprintSHA256,
		Role:              req.Role,
		Status:            storage.ClientActive,
		Subject:           cert.Subject.String(),
		IssuedAt:          cert.NotBefore,
		NotAfter:          cert.NotAfter,
		CreatedBy:         actor.Name,
	}
	if err := c.Store.Clients.Insert(ctx, row); err != nil {
		return nil, nil, fmt.Errorf("recording certificate %s for %s: %w", issued.SerialHex, req.ClientID, err)
	}
	c.announce(ctx, row.SerialNumber)
	if c.Issued != nil {
		c.Issued.Inc()
	}
	c.log("certificate issued", zap.String("client_id", row.ClientID), zap.String("role", row.Role),
		zap.String("serial", row.SerialNumber), zap.Time("not_after", row.NotAfter), zap.String("by", actor.Name))
	return issued, row, nil
}

// issueError turns the issuer's refusals of bad input into Invalid errors.
func issueError(err error) error {
	switch {
	case errors.Is(err, clientca.ErrCSRKey):
		return apperr.Wrap(err, apperr.Invalid, "csr_key_rejected", "%s", err.Error())
	case errors.Is(err, clientca.ErrCSRSignature):
		return apperr.Wrap(err, apperr.Invalid, "csr_bad_signature", "%s", err.Error())
	case errors.Is(err, clientca.ErrBadCSR):
		return apperr.Wrap(err, apperr.Invalid, "invalid_csr", "%s", err.Error())
	}
	if errors.Is(err, clientca.ErrInvalidRequest) {
		return apperr.Wrap(err, apperr.Invalid, "invalid_certificate_request", "%s", err.Error())
	}
	return fmt.Errorf("issuing client certificate: %w", err)
}

// Revoke revokes the certificate with serial target, or when target is a
// client id, every active certificate of that client.
func (c *Certificates) Revoke(ctx context.Context, actor Actor, target, reason string) ([]storage.Client, error) {
	revoked, err := c.revoke(ctx, target, reason)
	outcome, details := "success", "reason: "+reason
	if err != nil {
		outcome, details = "failure", errorSummary(err)
	}
	c.audit(ctx, actor, "certificate.revoke", target, outcome, details)
	return revoked, err
}

func (c *Certificates) revoke(ctx context.Context, target, reason string) ([]storage.Client, error) {
	target = strings.TrimSpace(target)
	reason = strings.TrimSpace(reason)
	if target == "" {
		return nil, apperr.New(apperr.Invalid, "missing_target", "name a client id or a certificate serial to revoke")
	}
	if reason == "" {
		return nil, apperr.New(apperr.Invalid, "missing_reason", "a revocation needs a reason")
	}
	if len(reason) > 255 {
		return nil, apperr.New(apperr.Invalid, "reason_too_long", "the reason must have at most 255 characters")
	}
	candidates, err := c.candidates(ctx, target)
	if err != nil {
		return nil, err
	}
	revoked, err := c.revokeAll(ctx, candidates, reason)
	if err == nil && len(revoked) == 0 {
		err = apperr.New(apperr.Conflict, "already_revoked", "%s has no active certificate", target)
	}
	return revoked, err
}

// revokeAll revokes candidates, announcing each; one revoked concurrently
// meanwhile is left out of the result.
func (c *Certificates) revokeAll(ctx context.Context, candidates []storage.Client, reason string) ([]storage.Client, error) {
	now := time.Now().UTC()
	var revoked []storage.Client
	for _, cl := range candidates {
		err := c.Store.Clients.Revoke(ctx, cl.SerialNumber, reason, now)
		if errors.Is(err, storage.ErrConflict) {
			continue // revoked concurrently: the goal is reached
		}
		if err != nil {
			return revoked, fmt.Errorf("revoking certificate %s: %w", cl.SerialNumber, err)
		}
		cl.Status, cl.RevokedAt, cl.RevocationReason = storage.ClientRevoked, &now, &reason
		revoked = append(revoked, cl)
		c.announce(ctx, cl.SerialNumber)
		if c.Revoked != nil {
			c.Revoked.Inc()
		}
		c.log("certificate revoked", zap.String("client_id", cl.ClientID), zap.String("serial", cl.SerialNumber),
			zap.String("reason", reason))
	}
	return revoked, nil
}

// candidates finds the certificates a revocation target names.
func (c *Certificates) candidates(ctx context.Context, target string) ([]storage.Client, error) {
	// Serials are written many ways (OpenSSL prints a leading zero and
	// colons); compare in the canonical form the table stores.
	serial := target
	if n, parseErr := clientca.ParseSerialHex(target); parseErr == nil {
		serial = clientca.SerialHex(n)
	}
	bySerial, err := c.Store.Clients.GetBySerial(ctx, serial)
	if err == nil {
		if bySerial.Status != storage.ClientActive {
			return nil, apperr.New(apperr.Conflict, "already_revoked", "certificate %s is already revoked", bySerial.SerialNumber)
		}
		return []storage.Client{*bySerial}, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("looking up certificate %s: %w", target, err)
	}
	active, found, err := c.activeCertificates(ctx, target)
	switch {
	case err != nil:
		return nil, err
	case !found:
		return nil, apperr.New(apperr.NotFound, "certificate_not_found", "no certificate with serial or client id %s", target)
	case len(active) == 0:
		return nil, apperr.New(apperr.Conflict, "already_revoked", "%s has no active certificate", target)
	}
	return active, nil
}

// activeCertificates returns the active certificates of a client, and
// whether it has any certificate at all.
func (c *Certificates) activeCertificates(ctx context.Context, clientID string) (active []storage.Client, found bool, err error) {
	all, err := c.Store.Clients.ListFilter(ctx, "", clientID)
	if err != nil {
		return nil, false, fmt.Errorf("listing certificates of %s: %w", clientID, err)
	}
	for _, cl := range all {
		if cl.Status == storage.ClientActive {
			active = append(active, cl)
		}
	}
	return active, len(all) > 0, nil
}

func (c *Certificates) log(msg string, fields ...zap.Field) {
	if c.Logger != nil {
		c.Logger.Info(msg, fields...)
	}
}

func (c *Certificates) announce(ctx context.Context, serial string) {
	if c.Announce != nil {
		c.Announce(ctx, serial)
	}
}

// audit records an action. A failed audit write is logged, not returned:
// the action itself has already happened and must be reported as such.
func (c *Certificates) audit(ctx context.Context, actor Actor, action, target, outcome, details string) {
	if err := Audit(ctx, c.Store, actor, action, target, outcome, details); err != nil && c.Logger != nil {
		c.Logger.Error("audit log write failed", zap.String("action", action), zap.String("target", target), zap.Error(err))
	}
}

// Audit writes one audit_log row.
func Audit(ctx context.Context, store *storage.Store, actor Actor, action, target, outcome, details string) error {
	entry := &storage.AuditEntry{
		Actor: actor.Name, Action: action, Target: target, Outcome: outcome, RemoteAddr: actor.RemoteAddr,
	}
	if details != "" {
		entry.Details = &details
	}
	// The action happened whatever became of its caller: a client that
	// hangs up or a command interrupted mid-run must not erase its record.
	if err := store.Audit.Insert(context.WithoutCancel(ctx), entry); err != nil {
		return fmt.Errorf("writing audit entry %s %s: %w", action, target, err)
	}
	return nil
}

// errorSummary is what the audit log keeps of a failure: the client-facing
// message of domain errors, a generic text otherwise.
func errorSummary(err error) string {
	if e, ok := apperr.As(err); ok {
		return e.Code + ": " + e.Message
	}
	return "internal error"
}

// CRLValidity is how long a published CRL stays current (its nextUpdate).
// Gateways serve a fresh one on every fetch; the window only bounds how
// long another TLS terminator may keep using a copy.
const CRLValidity = 24 * time.Hour

// CRL returns a DER X.509 CRL, signed by the client-issuing intermediate,
// listing every revoked certificate that has not expired yet (an expired
// one is refused anyway). Its number is the Unix time of issue, so numbers
// increase across nodes without coordination.
func (c *Certificates) CRL(ctx context.Context) ([]byte, error) {
	revoked, now, err := c.revokedEntries(ctx)
	if err != nil {
		return nil, err
	}
	der, err := c.Issuer.CRL(ctx, revoked, big.NewInt(now.Unix()), CRLValidity)
	if err != nil {
		return nil, fmt.Errorf("signing CRL: %w", err)
	}
	return der, nil
}

// CRLChain is like CRL but returns a CRL for every level of a client's
// chain (see clientca.Issuer.CRLChain): what nginx's ssl_crl and HAProxy's
// crl-file need.
func (c *Certificates) CRLChain(ctx context.Context) ([][]byte, error) {
	revoked, now, err := c.revokedEntries(ctx)
	if err != nil {
		return nil, err
	}
	ders, err := c.Issuer.CRLChain(ctx, revoked, big.NewInt(now.Unix()), CRLValidity)
	if err != nil {
		return nil, fmt.Errorf("signing CRLs: %w", err)
	}
	return ders, nil
}

// revokedEntries reads the revoked certificates that have not expired.
func (c *Certificates) revokedEntries(ctx context.Context) ([]clientca.RevokedCert, time.Time, error) {
	rows, err := c.Store.Clients.ListFilter(ctx, storage.ClientRevoked, "")
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("listing revoked certificates: %w", err)
	}
	now := time.Now()
	revoked := make([]clientca.RevokedCert, 0, len(rows))
	for _, row := range rows {
		if row.NotAfter.Before(now) {
			continue
		}
		entry := clientca.RevokedCert{SerialHex: row.SerialNumber, RevokedAt: row.UpdatedAt}
		if row.RevokedAt != nil {
			entry.RevokedAt = *row.RevokedAt
		}
		if row.RevocationReason != nil {
			entry.Reason = *row.RevocationReason
		}
		revoked = append(revoked, entry)
	}
	return revoked, now, nil
}

// AuditRefusal records a failed admin action that was refused before it
// reached its service (a malformed body, a non-admin caller), so the
// audit log holds every attempt and not only those that got far enough
// to be judged.
func AuditRefusal(ctx context.Context, store *storage.Store, actor Actor, action, target string, err error) error {
	return Audit(ctx, store, actor, action, clip(target, 255), storage.AuditFailure, errorSummary(err))
}
