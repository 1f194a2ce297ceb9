package verifier

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/msgbroker/caddy-msgbroker/internal/caddyfileutil"
	"github.com/msgbroker/caddy-msgbroker/internal/clientca"
	"github.com/msgbroker/caddy-msgbroker/modules/msgbroker"
)

func init() {
	caddy.RegisterModule(HandshakeLog{})
}

// HandshakeLog is the listener wrapper `caddy.listeners.msgbroker_handshakes`:
// it logs and counts every TLS handshake refused for its client
// certificate. Go's TLS stack refuses a missing certificate, an unknown CA
// and an expired chain before any verifier runs, and tells neither the
// client (which often sees a bare EOF) nor Caddy's logs above debug level;
// this is where those refusals, and the msgbroker verifier's own, become
// visible: one log line each (reason, client id, serial, remote address),
// rate-limited, and msgbroker_tls_handshake_refusals_total{reason}.
//
// Caddyfile, in the global options (it wraps the listener after TLS):
//
//	servers {
//		listener_wrappers {
//			msgbroker_handshakes
//		}
//	}
type HandshakeLog struct {
	logger     *zap.Logger
	refusals   *prometheus.CounterVec
	lines      *rate.Limiter
	suppressed *atomic.Int64 // a pointer: Caddy copies the zero module value
}

// Log lines allowed per second and in a burst; past that refusals are only
// counted, and the next line says how many went unlogged.
const (
	refusalLinesPerSecond = 10
	refusalLinesBurst     = 20
)

// CaddyModule returns the Caddy module information.
func (HandshakeLog) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "caddy.listeners.msgbroker_handshakes",
		New: func() caddy.Module { return new(HandshakeLog) },
	}
}

// Provision gets the msgbroker app's refusal counter.
func (h *HandshakeLog) Provision(ctx caddy.Context) error {
	app, err := msgbroker.From(ctx)
	if err != nil {
		return err
	}
	h.logger = ctx.Logger()
	h.refusals = app.Metrics().HandshakeRefusals
	h.lines = rate.NewLimiter(refusalLinesPerSecond, refusalLinesBurst)
	h.suppressed = new(atomic.Int64)
	return nil
}

// WrapListener watches the handshake of every TLS connection ln accepts.
func (h *HandshakeLog) WrapListener(ln net.Listener) net.Listener {
	return &handshakeListener{Listener: ln, log: h}
}

type handshakeListener struct {
	net.Listener
	log *HandshakeLog
}

// Accept hands the connection on unchanged (the HTTP server needs the
// *tls.Conn itself) and waits for its handshake beside the server.
func (l *handshakeListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if tlsConn, ok := conn.(*tls.Conn); ok {
		go l.log.watch(tlsConn)
	}
	return conn, err
}

// watch waits for the handshake of conn. crypto/tls runs one handshake per
// connection, whichever goroutine asks first, and gives every caller its
// result, so this neither repeats nor disturbs the server's; the server's
// deadlines and closing the connection end the wait.
func (h *HandshakeLog) watch(conn *tls.Conn) {
	if err := conn.HandshakeContext(context.Background()); err != nil {
		h.observe(err, conn.RemoteAddr())
	}
}

// observe logs and counts err when it refused a client certificate; other
// handshake failures (a client that gave up, no shared cipher) are not
// about the certificate and stay at Caddy's debug log.
func (h *HandshakeLog) observe(err error, remote net.Addr) {
	reason, leaf := classify(err)
	if reason == "" {
		return
	}
	h.refusals.WithLabelValues(reason).Inc()
	if !h.lines.Allow() {
		h.suppressed.Add(1)
		return
	}
	fields := []zap.Field{zap.String("reason", reason), zap.String("remote_addr", remote.String()), zap.Error(err)}
	if leaf != nil {
		fields = append(fields, zap.String("client_id", leaf.Subject.CommonName),
			zap.String("serial", clientca.SerialHex(leaf.SerialNumber)))
	}
	if n := h.suppressed.Swap(0); n > 0 {
		fields = append(fields, zap.Int64("unlogged_before", n))
	}
	h.logger.Warn("TLS handshake refused", fields...)
}

// classify names why err refused a client certificate, and the leaf it
// refused when there was one; "" when err is no such refusal.
func classify(err error) (string, *x509.Certificate) {
	if refusal, ok := errors.AsType[*Refusal](err); ok {
		return refusal.Reason, refusal.Leaf
	}
	if failed, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
		var leaf *x509.Certificate
		if len(failed.UnverifiedCertificates) > 0 {
			leaf = failed.UnverifiedCertificates[0]
		}
		if _, ok := errors.AsType[x509.UnknownAuthorityError](failed.Err); ok {
			return ReasonUnknownCA, leaf
		}
		if invalid, ok := errors.AsType[x509.CertificateInvalidError](failed.Err); ok && invalid.Reason == x509.Expired {
			return ReasonExpired, leaf
		}
		return ReasonBadCertificate, leaf
	}
	// crypto/tls has no exported error for a missing client certificate.
	if strings.Contains(err.Error(), "client didn't provide a certificate") {
		return ReasonNoCertificate, nil
	}
	return "", nil
}

// UnmarshalCaddyfile parses `msgbroker_handshakes`, which takes no options.
func (h *HandshakeLog) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return caddyfileutil.NoOptions(d, "msgbroker_handshakes", "")
}

// Interface guards
var (
	_ caddy.Provisioner     = (*HandshakeLog)(nil)
	_ caddy.ListenerWrapper = (*HandshakeLog)(nil)
	_ caddyfile.Unmarshaler = (*HandshakeLog)(nil)
)
