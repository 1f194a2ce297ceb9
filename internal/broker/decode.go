package broker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
)

// decodeJSON decodes one JSON object from data into v. Unknown fields are
// ignored, as the seed's clients may send more than we read; anything that
// is not exactly one well-formed object with the right field types is an
// Invalid error that names the problem.
func decodeJSON(data []byte, v any) error {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return apperr.New(apperr.Invalid, "invalid_json", "the request body is empty; send a JSON object")
	}
	if trimmed[0] != '{' {
		return apperr.New(apperr.Invalid, "invalid_json", "the request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	if err := dec.Decode(v); err != nil {
		return describeJSONError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return apperr.New(apperr.Invalid, "invalid_json", "the request body has data after the JSON object")
	}
	return nil
}

func describeJSONError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "the body"
		}
		return apperr.New(apperr.Invalid, "invalid_field_type", "%s must be %s, not %s", field, jsonTypeName(typeErr.Type.Kind().String()), typeErr.Value)
	case errors.As(err, &syntaxErr):
		return apperr.New(apperr.Invalid, "invalid_json", "malformed JSON at byte %d", syntaxErr.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return apperr.New(apperr.Invalid, "invalid_json", "the JSON object is truncated")
	default:
		return apperr.New(apperr.Invalid, "invalid_json", "malformed JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
}

func jsonTypeName(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "map", "struct":
		return "an object"
	case "slice":
		return "an array"
	case "bool":
		return "a boolean"
	case "int", "int64", "float64":
		return "a number"
	}
	return fmt.Sprintf("of type %s", goKind)
}
