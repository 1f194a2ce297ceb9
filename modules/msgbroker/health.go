package msgbroker

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddypki"
	"github.com/msgbroker/caddy-msgbroker/storage"
)

// Component and overall health states.
const (
	Healthy   = "healthy"
	Degraded  = "degraded"
	Unhealthy = "unhealthy"
	// Disabled marks an optional component that is not configured.
	Disabled = "disabled"
)

// HealthReport is the answer of GET /health (status, timestamp and components, plus the
// redis and ca components and short reasons for anything not healthy).
type HealthReport struct {
	Status     string            `json:"status"`
	Timestamp  time.Time         `json:"timestamp"`
	Components map[string]string `json:"components"`
	// Details explains non-healthy components in words safe to show to
	// anyone who can reach the endpoint: no DSNs, hosts or key material.
	Details map[string]string `json:"details,omitempty"`
}

// caRenewalMargin is how close to expiry the CA's intermediate may get
// before the CA counts as degraded: Caddy renews it well before that, so
// reaching the margin means renewal is failing.
const caRenewalMargin = 24 * time.Hour

// CheckHealth probes every component. The database and the keys are
// essential (unhealthy ⇒ the node cannot do its work); Redis only speeds up
// revocation fan-out, so its failure degrades the node.
func (a *App) CheckHealth(ctx context.Context) HealthReport {
	r := HealthReport{
		Timestamp:  now().Truncate(time.Second),
		Components: map[string]string{},
		Details:    map[string]string{},
	}
	checks := map[string]func(context.Context) (string, string){
		"database":   a.databaseHealth,
		"redis":      a.redisHealth,
		"encryption": a.encryptionHealth,
		"ca":         a.caHealth,
	}
	for name, check := range checks {
		state, detail := check(ctx)
		r.Components[name] = state
		if detail != "" {
			r.Details[name] = detail
		}
	}

	r.Status = Healthy
	for name, state := range r.Components {
		switch {
		case state == Unhealthy && name != "redis":
			r.Status = Unhealthy
		case state == Unhealthy || state == Degraded:
			if r.Status == Healthy {
				r.Status = Degraded
			}
		}
	}
	if len(r.Details) == 0 {
		r.Details = nil
	}
	if a.metrics != nil {
		a.metrics.HealthChecksTotal.WithLabelValues(r.Status).Inc()
	}
	return r
}

func (a *App) databaseHealth(ctx context.Context) (string, string) {
	s, err := a.Services(ctx)
	if err != nil {
		return Unhealthy, "database not open"
	}
	checkCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := s.Store.DB.PingContext(checkCtx); err != nil {
		return Unhealthy, "database not answering"
	}
	if err := s.Store.CheckWritable(checkCtx); err != nil {
		if errors.Is(err, storage.ErrFileGone) {
			return Unhealthy, "database file was removed or replaced; restart the gateway"
		}
		return Unhealthy, "database does not take writes (disk full or read-only?)"
	}
	return Healthy, ""
}

func (a *App) redisHealth(ctx context.Context) (string, string) {
	if a.Redis == nil {
		return Disabled, ""
	}
	s, err := a.Services(ctx)
	if err != nil || s.Redis == nil {
		return Unhealthy, "redis client not available"
	}
	pingCtx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := s.Redis.Ping(pingCtx).Err(); err != nil {
		return Unhealthy, "redis not answering; revocations propagate by polling"
	}
	return Healthy, ""
}

func (a *App) encryptionHealth(ctx context.Context) (string, string) {
	s, err := a.Services(ctx)
	if err != nil {
		return Unhealthy, "keys not loaded"
	}
	kr := s.Keyring()
	if kr == nil {
		return Unhealthy, "no encryption keyring loaded"
	}
	if err := kr.SelfTest(); err != nil {
		return Unhealthy, "encryption self-test failed"
	}
	if s.Hasher == nil {
		return Unhealthy, "no phone hash key loaded"
	}
	return Healthy, ""
}

// caHealth rates the CA. A config without the CA only degrades the node:
// it cannot issue client certificates, but it serves everything else.
func (a *App) caHealth(ctx context.Context) (string, string) {
	ca, err := a.certificateAuthority()
	if err != nil {
		return Degraded, err.Error() + "; client certificates cannot be issued"
	}
	return chainHealth(ca.RootCertificate(), ca.IntermediateCertificateChain(), now())
}

// certificateAuthority returns the pki CA that issues client certificates.
// It only looks at a pki app the config already has: loading one here would
// create a CA as a side effect of a health check.
func (a *App) certificateAuthority() (*caddypki.CA, error) {
	pkiApp, err := a.ctx.AppIfConfigured("pki")
	if err != nil || pkiApp == nil {
		return nil, fmt.Errorf("pki app not configured")
	}
	ca, ok := pkiApp.(*caddypki.PKI).CAs[a.CA]
	if !ok {
		return nil, fmt.Errorf("pki CA %q not configured", a.CA)
	}
	return ca, nil
}

// chainHealth rates a CA's root and intermediate by their validity.
func chainHealth(root *x509.Certificate, chain []*x509.Certificate, at time.Time) (string, string) {
	if root == nil || len(chain) == 0 {
		return Unhealthy, "CA certificates not loaded"
	}
	for _, c := range append([]*x509.Certificate{root}, chain...) {
		if at.Before(c.NotBefore) || at.After(c.NotAfter) {
			return Unhealthy, fmt.Sprintf("CA certificate %q is outside its validity period", c.Subject.CommonName)
		}
	}
	if chain[0].NotAfter.Sub(at) < caRenewalMargin {
		return Degraded, "CA intermediate expires within 24h; renewal is overdue"
	}
	return Healthy, ""
}
