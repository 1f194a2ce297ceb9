// Package trustpool provides `tls.ca_pool.source.msgbroker`, the trust pool
// for the internal API's client certificates: the root of the msgbroker
// app's pki CA and every client-issuing intermediate whose leaves may still
// be in use (the current one and those archived by rotation).
//
// With `trust_pool pki_root` only the root is trusted, so a client must
// present its leaf followed by the intermediate, and a client configured
// with its certificate file alone fails with an unexplained `unknown ca`.
// Most clients take one certificate file; with this pool both the leaf
// alone and the chain verify. The msgbroker verifier still decides whether
// the leaf is active.
//
// Caddyfile, inside a tls client_auth block:
//
//	client_auth {
//		mode require_and_verify
//		trust_pool msgbroker
//		verifier msgbroker
//	}
//
// Like Caddy's own pki_intermediate pool, provisioning creates what it
// trusts when it does not exist yet: the client-issuing intermediate is made
// (or rotated, when due) so that the certificates issued under this config
// are covered. A rotation happens about every four years, on an issuance;
// leaf-only clients of the new intermediate are accepted after the next
// config reload, clients presenting the chain at once.
package trustpool

import (
	"context"
	"crypto/x509"
	"fmt"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddypki"
	"github.com/caddyserver/caddy/v2/modules/caddytls"

	"github.com/msgbroker/caddy-msgbroker/internal/caddyfileutil"
	"github.com/msgbroker/caddy-msgbroker/internal/clientca"
	"github.com/msgbroker/caddy-msgbroker/modules/msgbroker"
)

func init() {
	caddy.RegisterModule(Pool{})
}

// Pool trusts the msgbroker CA's root and its client-issuing
// intermediates. It has no configuration: the CA is the msgbroker app's
// `ca` option.
type Pool struct {
	pool  *x509.CertPool
	certs []*x509.Certificate
}

// CaddyModule returns the Caddy module information.
func (Pool) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "tls.ca_pool.source.msgbroker",
		New: func() caddy.Module { return new(Pool) },
	}
}

// Provision loads the root and the intermediates from Caddy's storage,
// creating the pki CA and the client-issuing intermediate when missing.
func (p *Pool) Provision(ctx caddy.Context) error {
	app, err := msgbroker.From(ctx)
	if err != nil {
		return err
	}
	pkiApp, err := ctx.App("pki")
	if err != nil {
		return fmt.Errorf("trust_pool msgbroker: loading the pki app: %w", err)
	}
	// GetCA creates the root in storage if it is new, as it does for
	// `tls internal`.
	ca, err := pkiApp.(*caddypki.PKI).GetCA(ctx, app.CA)
	if err != nil {
		return fmt.Errorf("trust_pool msgbroker: pki CA %q: %w", app.CA, err)
	}
	issuer, err := clientca.New(clientca.Config{CAID: app.CA, Name: ca.Name, Storage: ctx.Storage()})
	if err != nil {
		return fmt.Errorf("trust_pool msgbroker: %w", err)
	}
	certs, err := trusted(ctx, issuer)
	if err != nil {
		return fmt.Errorf("trust_pool msgbroker: CA %q: %w", app.CA, err)
	}
	p.pool = x509.NewCertPool()
	for _, c := range certs {
		p.pool.AddCert(c)
	}
	p.certs = certs
	return nil
}

// trusted returns the root followed by the intermediates.
func trusted(ctx context.Context, issuer *clientca.Issuer) ([]*x509.Certificate, error) {
	intermediates, err := issuer.Intermediates(ctx)
	if err != nil {
		return nil, err
	}
	root, err := issuer.Root(ctx)
	if err != nil {
		return nil, err
	}
	return append([]*x509.Certificate{root}, intermediates...), nil
}

// CertPool returns the pool of trusted certificates.
func (p Pool) CertPool() *x509.CertPool { return p.pool }

// Certificates returns the trusted certificates, the root first, so the
// pool can be combined with others.
func (p Pool) Certificates() []*x509.Certificate { return p.certs }

// UnmarshalCaddyfile parses `trust_pool msgbroker`, which takes no options.
func (p *Pool) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return caddyfileutil.NoOptions(d, "trust_pool msgbroker", "the CA is the ca option of the msgbroker global option")
}

// Interface guards
var (
	_ caddy.Provisioner            = (*Pool)(nil)
	_ caddytls.CA                  = (*Pool)(nil)
	_ caddytls.CertificateProvider = (*Pool)(nil)
	_ caddyfile.Unmarshaler        = (*Pool)(nil)
)
