// Package internalapi provides the `msgbroker_internal` HTTP handler: the
// internal API that proxies and workers call over mutual TLS.
//
//	POST /internal/messages/register      (proxy)  register a message
//	POST /internal/messages/deliver       (worker) confirm a delivery
//	PUT  /internal/messages/{id}/status   (worker) report progress
//
// The caller is the verified client certificate: its CN is the client id
// and the clients table says its role (recorded at issuance, and also
// carried in the certificate as OU and as the URI SAN
// urn:msgbroker:role:<role>). The certificate must be known and active —
// checked at the handshake by the `msgbroker` client-auth verifier and
// again on every request, so a revocation also ends kept-alive connections.
//
// Caddyfile:
//
//	msgbroker_internal
//
// on a site whose tls block requires and verifies client certificates:
//
//	https://broker.internal:8443 {
//		tls {
//			client_auth {
//				mode require_and_verify
//				trust_pool pki_root {
//					authority local
//				}
//				verifier msgbroker
//			}
//		}
//		msgbroker_internal
//	}
//
// Other paths are passed to the next handler; unknown paths under
// /internal/ get a JSON 404.
package internalapi

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/internal/certregistry"
	"github.com/msgbroker/caddy-msgbroker/internal/httpapi"
	"github.com/msgbroker/caddy-msgbroker/internal/strictjson"
	"github.com/msgbroker/caddy-msgbroker/modules/msgbroker"
	"github.com/msgbroker/caddy-msgbroker/storage"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler serves the internal API. It has no configuration of its own: the
// limits are the msgbroker app's (max_request_bytes, max_body_chars).
type Handler struct {
	app *msgbroker.App
	// services is app.Services; a field so a test can make it fail.
	services func(context.Context) (*msgbroker.Services, error)
	logger   *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.msgbroker_internal",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision gets the msgbroker app.
func (h *Handler) Provision(ctx caddy.Context) error {
	app, err := msgbroker.From(ctx)
	if err != nil {
		return err
	}
	h.app = app
	h.services = app.Services
	h.logger = ctx.Logger()
	return nil
}

const prefix = "/internal/"

// route is one endpoint: the role it needs and the function doing the work.
type route struct {
	name   string
	method string
	role   string
	serve  func(h *Handler, w http.ResponseWriter, r *http.Request, client certregistry.Entry, param string) error
}

// match finds the route of a path; param is the {id} of the status route.
func match(path string) (rt route, param string, ok bool) {
	switch path {
	case "/internal/messages/register":
		return route{"register", http.MethodPost, storage.ClientRoleProxy, (*Handler).register}, "", true
	case "/internal/messages/deliver":
		return route{"deliver", http.MethodPost, storage.ClientRoleWorker, (*Handler).deliver}, "", true
	}
	if rest, found := strings.CutPrefix(path, "/internal/messages/"); found {
		if id, isStatus := strings.CutSuffix(rest, "/status"); isStatus && id != "" && !strings.Contains(id, "/") {
			return route{"status", http.MethodPut, storage.ClientRoleWorker, (*Handler).status}, id, true
		}
	}
	return route{}, "", false
}

// ServeHTTP routes internal API requests and passes anything else on.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if !strings.HasPrefix(r.URL.Path, prefix) {
		return next.ServeHTTP(w, r)
	}
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	w = sw
	rt, param, ok := match(r.URL.Path)
	endpoint := rt.name
	var err error
	switch {
	case !ok:
		endpoint = "unknown"
		err = apperr.New(apperr.NotFound, "not_found", "no internal API endpoint at %s", r.URL.Path)
	case r.Method != rt.method:
		w.Header().Set("Allow", rt.method)
		err = apperr.New(apperr.MethodNotAllowed, "method_not_allowed", "%s is not allowed here; use %s", r.Method, rt.method)
	default:
		var client certregistry.Entry
		client, err = h.authorize(r, rt.role)
		if err == nil {
			err = rt.serve(h, w, r, client, param)
		}
	}
	if err != nil {
		h.writeError(w, r, err)
	}
	h.observe(r.Method, endpoint, sw.status, time.Since(start))
	return nil
}

// statusWriter remembers the status code for the metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if status := httpapi.WriteError(w, err); status >= 500 {
		h.logger.Error("internal API request failed", zap.String("path", r.URL.Path), zap.Error(err))
	}
}

func (h *Handler) observe(method, endpoint string, status int, elapsed time.Duration) {
	m := h.app.Metrics()
	if m == nil {
		return
	}
	endpoint = "internal_" + endpoint
	m.RequestsTotal.WithLabelValues(method, endpoint, strconv.Itoa(status)).Inc()
	m.RequestDuration.WithLabelValues(method, endpoint).Observe(elapsed.Seconds())
}

// authorize identifies the caller by its verified certificate and checks
// that the certificate is active and carries the role the route needs.
func (h *Handler) authorize(r *http.Request, role string) (certregistry.Entry, error) {
	leaf := verifiedLeaf(r)
	if leaf == nil {
		return certregistry.Entry{}, apperr.New(apperr.Unauthenticated, "client_certificate_required",
			"the internal API needs a client certificate issued by the broker's CA")
	}
	svcs, err := h.services(r.Context())
	if err != nil {
		return certregistry.Entry{}, httpapi.Unavailable(err)
	}
	entry, err := svcs.Registry.Check(leaf)
	if err != nil {
		return entry, certificateError(err)
	}
	if entry.Role != role {
		return entry, apperr.New(apperr.Forbidden, "wrong_role",
			"this endpoint needs a %s certificate; client %s has role %s", role, entry.ClientID, entry.Role)
	}
	return entry, nil
}

// verifiedLeaf returns the client certificate only when the TLS layer
// verified it; an unverified peer certificate proves nothing.
func verifiedLeaf(r *http.Request) *x509.Certificate {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return nil
	}
	return r.TLS.VerifiedChains[0][0]
}

// certificateCodes are the error codes of the registry's refusals.
var certificateCodes = map[error]string{
	certregistry.ErrUnknown:  "certificate_unknown",
	certregistry.ErrRevoked:  "certificate_revoked",
	certregistry.ErrExpired:  "certificate_expired",
	certregistry.ErrMismatch: "certificate_mismatch",
}

func certificateError(err error) error {
	for sentinel, code := range certificateCodes {
		if errors.Is(err, sentinel) {
			return apperr.New(apperr.Forbidden, code, "%s", err.Error())
		}
	}
	return httpapi.Unavailable(err)
}

// readBody reads the request body up to the app's limit. Only JSON is
// read: a body sent as anything else was meant for another server or
// encoded in a way we would misread.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); !strictjson.IsJSONContentType(ct) {
		return nil, apperr.New(apperr.UnsupportedMediaType, "unsupported_media_type",
			"the request body must be sent as Content-Type: application/json, not %q", ct)
	}
	limit := h.app.MaxRequestBytes
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, apperr.New(apperr.TooLarge, "request_too_large",
			"the request body exceeds %d bytes", limit)
	}
	if err != nil {
		return nil, apperr.New(apperr.Invalid, "unreadable_body", "the request body could not be read")
	}
	return body, nil
}

func (h *Handler) register(w http.ResponseWriter, r *http.Request, client certregistry.Entry, _ string) error {
	body, err := h.readBody(w, r)
	if err != nil {
		return err
	}
	req, err := broker.DecodeRegister(body, h.app.MaxBodyChars)
	if err != nil {
		return err
	}
	svcs, err := h.services(r.Context())
	if err != nil {
		return httpapi.Unavailable(err)
	}
	svc := svcs.Messages
	receipt, err := svc.Register(r.Context(), client.ClientID, req)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if receipt.Created {
		status = http.StatusCreated
		h.app.Metrics().MessagesRegistered.WithLabelValues(client.ClientID).Inc()
		h.logger.Info("message registered", zap.String("message_id", receipt.MessageID), zap.String("client_id", client.ClientID))
	}
	httpapi.WriteJSON(w, status, receipt)
	return nil
}

func (h *Handler) deliver(w http.ResponseWriter, r *http.Request, client certregistry.Entry, _ string) error {
	body, err := h.readBody(w, r)
	if err != nil {
		return err
	}
	req, err := broker.DecodeDeliver(body)
	if err != nil {
		return err
	}
	svcs, err := h.services(r.Context())
	if err != nil {
		return httpapi.Unavailable(err)
	}
	svc := svcs.Messages
	state, err := svc.Deliver(r.Context(), req.MessageID)
	if err != nil {
		return err
	}
	h.recordTransition(client, state, broker.StatusRequest{Status: storage.MessageDelivered})
	httpapi.WriteJSON(w, http.StatusOK, state)
	return nil
}

func (h *Handler) status(w http.ResponseWriter, r *http.Request, client certregistry.Entry, rawID string) error {
	id, err := broker.ParseMessageID(rawID)
	if err != nil {
		return err
	}
	body, err := h.readBody(w, r)
	if err != nil {
		return err
	}
	req, err := broker.DecodeStatus(body)
	if err != nil {
		return err
	}
	svcs, err := h.services(r.Context())
	if err != nil {
		return httpapi.Unavailable(err)
	}
	svc := svcs.Messages
	state, err := svc.UpdateStatus(r.Context(), id, req)
	if err != nil {
		return err
	}
	h.recordTransition(client, state, req)
	httpapi.WriteJSON(w, http.StatusOK, state)
	return nil
}

// recordTransition counts and logs a state change that actually happened
// (not a repeated confirmation).
func (h *Handler) recordTransition(worker certregistry.Entry, state broker.State, req broker.StatusRequest) {
	if !state.Changed {
		return
	}
	m := h.app.Metrics()
	switch state.Status {
	case storage.MessageDelivered:
		m.MessagesDelivered.WithLabelValues(state.ClientID).Inc()
	case storage.MessageFailed:
		reason := req.Reason
		if reason == "" {
			reason = "unspecified"
		}
		m.MessagesFailed.WithLabelValues(state.ClientID, reason).Inc()
	}
	h.logger.Info("message status changed", zap.String("message_id", state.MessageID),
		zap.String("status", state.Status), zap.Int("attempts", state.Attempts), zap.String("worker", worker.ClientID))
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
