package portal

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
)

// maxRequestBytes bounds a portal request body; the largest is a password
// change, a few hundred bytes.
const maxRequestBytes = 16 << 10

// decode reads r's body as exactly one JSON object into v, refusing
// unknown fields. It is the one place the portal decodes JSON, to be
// replaced by the broker's shared strict decoder.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return apperr.New(apperr.UnsupportedMediaType, "unsupported_media_type", "send the body as application/json")
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBytes))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return apperr.New(apperr.TooLarge, "request_too_large", "the request body exceeds %d bytes", maxRequestBytes)
	case errors.Is(err, io.EOF):
		return apperr.New(apperr.Invalid, "invalid_json", "the request body is empty; send a JSON object")
	case err != nil:
		return apperr.New(apperr.Invalid, "invalid_json", "the request body is not the expected JSON object: %s", jsonProblem(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return apperr.New(apperr.Invalid, "invalid_json", "the request body has data after the JSON object")
	}
	return nil
}

// jsonProblem describes a decoding error without echoing the body.
func jsonProblem(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return "malformed JSON"
	case errors.As(err, &typ):
		return typ.Field + " has the wrong type"
	}
	return err.Error()
}
