package portal

import (
	"errors"
	"io"
	"net/http"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/internal/strictjson"
)

// maxRequestBytes bounds a portal request body; the largest is a password
// change, a few hundred bytes.
const maxRequestBytes = 16 << 10

// decode reads r's body as exactly one JSON object into v with the broker's
// one strict decoder (unknown, wrong-case and duplicate keys, invalid UTF-8
// and control characters refused; see internal/strictjson).
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); !strictjson.IsJSONContentType(ct) {
		return apperr.New(apperr.UnsupportedMediaType, "unsupported_media_type",
			"the request body must be sent as Content-Type: application/json, not %q", ct)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBytes))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return apperr.New(apperr.TooLarge, "request_too_large", "the request body exceeds %d bytes", maxRequestBytes)
	case err != nil:
		return apperr.New(apperr.Invalid, "unreadable_body", "the request body could not be read")
	}
	return strictjson.Decode(body, v)
}
