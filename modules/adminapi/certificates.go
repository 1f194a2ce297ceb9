package adminapi

import (
	"net/http"
	"time"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/internal/httpapi"
)

type generateRequest struct {
	ClientID     string `json:"client_id"`
	Role         string `json:"role"`
	ValidityDays *int   `json:"validity_days"`
	CSR          string `json:"csr"`
}

// generateAnswer is an issued certificate. PrivateKey is present only
// when the server generated the key (no CSR): it is returned this once
// and stored nowhere.
type generateAnswer struct {
	ClientID          string    `json:"client_id"`
	Role              string    `json:"role"`
	Serial            string    `json:"serial"`
	FingerprintSHA256 string    `json:"fingerprint_sha256"`
	NotBefore         time.Time `json:"not_before"`
	NotAfter          time.Time `json:"not_after"`
	Certificate       string    `json:"certificate"`
	Chain             string    `json:"chain"`
	CACertificate     string    `json:"ca_certificate"`
	PrivateKey        string    `json:"private_key,omitempty"`
}

func (h *Handler) generate(w http.ResponseWriter, r *http.Request, c *call) error {
	var req generateRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if req.ClientID == "" || req.Role == "" {
		return apperr.New(apperr.Invalid, "missing_field", "client_id and role are required")
	}
	days := 0
	if req.ValidityDays != nil {
		if days = *req.ValidityDays; days < 1 {
			return apperr.New(apperr.Invalid, "invalid_days", "validity_days must be at least 1")
		}
	}
	c.handedOver = true
	issued, row, err := c.svcs.Certificates.Issue(r.Context(), c.actor(r), broker.IssueRequest{
		ClientID: req.ClientID, Role: req.Role, Days: days, CSRPEM: []byte(req.CSR),
	})
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusCreated, generateAnswer{
		ClientID: row.ClientID, Role: row.Role, Serial: row.SerialNumber, FingerprintSHA256: row.FingerprintSHA256,
		NotBefore: issued.Certificate.NotBefore.UTC(), NotAfter: issued.Certificate.NotAfter.UTC(),
		Certificate: string(issued.CertificatePEM), Chain: string(issued.ChainPEM), CACertificate: string(issued.CAPEM),
		PrivateKey: string(issued.PrivateKeyPEM),
	})
	return nil
}

type revokeRequest struct {
	Serial   string `json:"serial"`
	ClientID string `json:"client_id"`
	Reason   string `json:"reason"`
}

type revokeAnswer struct {
	Revoked []broker.CertificateItem `json:"revoked"`
}

func (h *Handler) revoke(w http.ResponseWriter, r *http.Request, c *call) error {
	var req revokeRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	c.handedOver = true
	rows, err := c.svcs.Certificates.RevokeNamed(r.Context(), c.actor(r), broker.RevokeRequest{
		Serial: req.Serial, ClientID: req.ClientID, Reason: req.Reason,
	})
	if err != nil {
		return err
	}
	ans := revokeAnswer{Revoked: make([]broker.CertificateItem, 0, len(rows))}
	now := time.Now()
	for i := range rows {
		ans.Revoked = append(ans.Revoked, broker.CertificateItemOf(&rows[i], now))
	}
	httpapi.WriteJSON(w, http.StatusOK, ans)
	return nil
}

func (h *Handler) certificates(w http.ResponseWriter, r *http.Request, c *call) error {
	q := r.URL.Query()
	page, err := c.svcs.Certificates.List(r.Context(), broker.CertificateQuery{
		Status: q.Get("status"), ClientID: q.Get("client_id"), ExpiringWithin: q.Get("expiring_within"),
		Limit: q.Get("limit"), Cursor: q.Get("cursor"), Caller: c.principal.Claims.Subject,
	})
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, page)
	return nil
}

// crl answers what /crl answers, from the same code.
func (h *Handler) crl(w http.ResponseWriter, r *http.Request, c *call) error {
	q := r.URL.Query()
	body, contentType, err := c.svcs.Certificates.CRLDocument(r.Context(), q.Get("format"), q.Get("chain"))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
	return nil
}
