// Package verifier provides `tls.client_auth.verifier.msgbroker`, a
// caddytls.ClientCertificateVerifier that refuses, during the TLS
// handshake, client certificates the broker did not issue or has revoked.
//
// Caddy verifies the chain against the trust pool; it has no revocation
// checking for client certificates (caddyserver/caddy#2341). This verifier
// adds it: the leaf's serial must be in the broker's registry of issued
// certificates, active, unexpired and registered to the certificate's CN.
// The registry is in memory (a map lookup per handshake) and kept fresh by
// the msgbroker app — at once on the node that revoked, through Redis
// pub/sub on the others, and by polling every revocation_poll_interval
// (default 1s) as the safety net. Caddy ≥ 2.11.3 runs verifiers on resumed
// TLS sessions too, so a revoked certificate cannot ride on a session
// ticket.
//
// Caddyfile, inside a tls client_auth block:
//
//	client_auth {
//		mode require_and_verify
//		trust_pool pki_root {
//			authority local
//		}
//		verifier msgbroker
//	}
package verifier

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddytls"
	"go.uber.org/zap"

	"github.com/msgbroker/caddy-msgbroker/internal/clientca"
	"github.com/msgbroker/caddy-msgbroker/modules/msgbroker"
)

func init() {
	caddy.RegisterModule(Verifier{})
}

// Verifier checks client certificates against the broker's registry. It
// has no configuration; the refresh interval is the msgbroker app's.
type Verifier struct {
	app    *msgbroker.App
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Verifier) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "tls.client_auth.verifier.msgbroker",
		New: func() caddy.Module { return new(Verifier) },
	}
}

// Provision gets the msgbroker app.
func (v *Verifier) Provision(ctx caddy.Context) error {
	app, err := msgbroker.From(ctx)
	if err != nil {
		return err
	}
	v.app = app
	v.logger = ctx.Logger()
	return nil
}

// handshakeTimeout bounds how long a handshake waits for the app's
// services (when it arrives before the app has started) and for the
// database lookup of a serial the registry does not know yet.
const handshakeTimeout = 5 * time.Second

// VerifyClientCertificate refuses a leaf that is not an active certificate
// of the broker. Caddy calls it only when the client sent a certificate
// and after the chain was verified.
func (v *Verifier) VerifyClientCertificate(rawCerts [][]byte, verifiedChains [][]*x509.Certificate) error {
	leaf, err := leafOf(rawCerts, verifiedChains)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	defer cancel()
	svcs, err := v.app.Services(ctx)
	if err != nil {
		v.logger.Error("client certificate registry unavailable; refusing the handshake", zap.Error(err))
		return fmt.Errorf("msgbroker: client certificate registry unavailable")
	}
	if _, err := svcs.Registry.CheckFresh(ctx, leaf); err != nil {
		v.logger.Info("client certificate refused", zap.String("serial", clientca.SerialHex(leaf.SerialNumber)),
			zap.String("client_id", leaf.Subject.CommonName), zap.String("reason", err.Error()))
		return fmt.Errorf("msgbroker: %w", err)
	}
	return nil
}

func leafOf(rawCerts [][]byte, verifiedChains [][]*x509.Certificate) (*x509.Certificate, error) {
	if len(verifiedChains) > 0 && len(verifiedChains[0]) > 0 {
		return verifiedChains[0][0], nil
	}
	// Without a verified chain (client_auth mode request or require) the
	// certificate proves nothing; refuse rather than trust its serial.
	if len(rawCerts) == 0 {
		return nil, errors.New("msgbroker: no client certificate")
	}
	return nil, errors.New("msgbroker: client certificate was not verified; use client_auth mode require_and_verify")
}

// Interface guards
var (
	_ caddy.Provisioner                  = (*Verifier)(nil)
	_ caddytls.ClientCertificateVerifier = (*Verifier)(nil)
)
