package httpapi

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/internal/strictjson"
)

// BearerToken returns the token of an `Authorization: Bearer …` header, or
// "" when there is none or the scheme is another (the token service then
// answers token_missing). The portal and the admin API read it here, so
// both accept exactly the same headers.
func BearerToken(r *http.Request) string {
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// BearerChallenge is the WWW-Authenticate value of a refused bearer token
// (RFC 6750).
const BearerChallenge = `Bearer realm="msgbroker"`

// WriteBearerError is WriteError for routes authenticated by bearer
// token: a 401 carries the WWW-Authenticate challenge RFC 6750 asks for.
func WriteBearerError(w http.ResponseWriter, err error) int {
	if apperr.KindOf(err) == apperr.Unauthenticated {
		w.Header().Set("WWW-Authenticate", BearerChallenge)
	}
	return WriteError(w, err)
}

// RemoteAddr is the client's address as Caddy determined it (honouring
// trusted_proxies), without the port, for lockouts and the audit log.
func RemoteAddr(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// DecodeJSON reads r's body, at most maxBytes, as exactly one JSON object
// into v with the broker's one strict decoder (unknown, wrong-case and
// duplicate keys, invalid UTF-8 and control characters refused; see
// internal/strictjson). The Content-Type must be JSON.
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any, maxBytes int64) error {
	if ct := r.Header.Get("Content-Type"); !strictjson.IsJSONContentType(ct) {
		return apperr.New(apperr.UnsupportedMediaType, "unsupported_media_type",
			"the request body must be sent as Content-Type: application/json, not %q", ct)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBytes))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return apperr.New(apperr.TooLarge, "request_too_large", "the request body exceeds %d bytes", maxBytes)
	case err != nil:
		return apperr.New(apperr.Invalid, "unreadable_body", "the request body could not be read")
	}
	return strictjson.Decode(body, v)
}

// StatusWriter remembers the status code written, for metrics.
type StatusWriter struct {
	http.ResponseWriter
	Status int
}

// WriteHeader records code and passes it on.
func (s *StatusWriter) WriteHeader(code int) {
	s.Status = code
	s.ResponseWriter.WriteHeader(code)
}

// Write records an implicit 200.
func (s *StatusWriter) Write(b []byte) (int, error) {
	if s.Status == 0 {
		s.Status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *StatusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
