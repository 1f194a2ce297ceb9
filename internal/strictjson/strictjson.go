// Package strictjson decodes JSON request bodies exactly as sent or not at
// all. encoding/json is lenient in ways that silently change what a client
// meant: it replaces invalid UTF-8 and lone surrogate escapes with U+FFFD,
// keeps the last of duplicate keys, matches keys case-insensitively and
// ignores unknown ones. A broker that stores what it was sent must refuse
// each of those instead, with an error that says which rule was broken, so
// every decoder of a request body (internal, portal and admin APIs) goes
// through Decode.
//
// Every error is an apperr Invalid error with one of these codes:
//
//	invalid_json        empty, not an object, malformed, truncated or trailing data
//	invalid_utf8        the body is not valid UTF-8
//	lone_surrogate      a \uD800–\uDFFF escape that is not half of a pair
//	duplicate_key       an object repeats a key
//	unknown_field       a key the request does not define, or one spelled in another case
//	control_character   a string holds a control character other than tab, LF and CR
//	invalid_field_type  a field has the wrong JSON type
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
)

// IsJSONContentType reports whether a Content-Type header announces JSON
// as this package reads it: application/json, optionally with
// charset=utf-8 (RFC 8259 allows no other encoding).
func IsJSONContentType(header string) bool {
	mediaType, params, err := mime.ParseMediaType(header)
	if err != nil || mediaType != "application/json" {
		return false
	}
	for name, value := range params {
		if name != "charset" || !strings.EqualFold(value, "utf-8") {
			return false
		}
	}
	return true
}

// Decode decodes data, which must be exactly one JSON object, into v, a
// pointer to a struct. Keys must match the struct's json names exactly,
// at every level where the Go type is a struct; objects decoded into maps,
// interfaces or json.RawMessage may have any keys, but never duplicates.
func Decode(data []byte, v any) error {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return invalid("invalid_json", "the request body is empty; send a JSON object")
	}
	if trimmed[0] != '{' {
		return invalid("invalid_json", "the request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return describe(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return invalid("invalid_json", "the request body has data after the JSON object")
	}
	if !utf8.Valid(trimmed) {
		return invalid("invalid_utf8", "the request body is not valid UTF-8 (first bad byte at offset %d)", invalidUTF8Offset(trimmed))
	}
	if offset := loneSurrogate(trimmed); offset >= 0 {
		return invalid("lone_surrogate", "the escape at byte %d is half of a UTF-16 surrogate pair; send the character itself or both halves", offset)
	}
	// The syntax is known good from here on: the walk only checks keys
	// and strings.
	walk := json.NewDecoder(bytes.NewReader(trimmed))
	walk.UseNumber()
	if err := (&walker{dec: walk}).value("", reflect.TypeOf(v)); err != nil {
		return err
	}
	if err := json.Unmarshal(trimmed, v); err != nil {
		return describe(err)
	}
	return nil
}

func invalid(code, format string, args ...any) error {
	return apperr.New(apperr.Invalid, code, format, args...)
}

func invalidUTF8Offset(data []byte) int {
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return -1
}

// loneSurrogate returns the offset of the first \u escape of a surrogate
// that is not part of a high-low pair, or -1. In JSON a backslash occurs
// only inside strings, so scanning escapes left to right needs no string
// state; malformed input is left for the decoder to report.
func loneSurrogate(data []byte) int {
	for i := 0; i < len(data); i++ {
		if data[i] != '\\' {
			continue
		}
		r, ok := unicodeEscape(data, i)
		switch {
		case !ok:
			i++ // a two-byte escape such as \\ or \"
		case r >= 0xD800 && r < 0xDC00:
			if low, ok := unicodeEscape(data, i+6); !ok || low < 0xDC00 || low > 0xDFFF {
				return i
			}
			i += 11
		case r >= 0xDC00 && r <= 0xDFFF:
			return i
		default:
			i += 5
		}
	}
	return -1
}

// unicodeEscape reads a \uXXXX escape at data[i:].
func unicodeEscape(data []byte, i int) (rune, bool) {
	if i+6 > len(data) || data[i] != '\\' || data[i+1] != 'u' {
		return 0, false
	}
	n, err := strconv.ParseUint(string(data[i+2:i+6]), 16, 32)
	return rune(n), err == nil
}

// walker checks the token stream against the Go type it will fill.
type walker struct {
	dec *json.Decoder
}

func (w *walker) value(path string, t reflect.Type) error {
	tok, err := w.dec.Token()
	if err != nil {
		return describe(err)
	}
	switch tok := tok.(type) {
	case json.Delim:
		if tok == '{' {
			return w.object(path, t)
		}
		return w.array(path, t)
	case string:
		return checkText(path, tok)
	}
	return nil
}

func (w *walker) object(path string, t reflect.Type) error {
	t = freeForm(t)
	var fields map[string]reflect.Type
	if t != nil && t.Kind() == reflect.Struct {
		fields = fieldsOf(t)
	}
	seen := make(map[string]bool)
	for w.dec.More() {
		tok, err := w.dec.Token()
		if err != nil {
			return describe(err)
		}
		key, _ := tok.(string)
		field := join(path, key)
		if err := checkText(field, key); err != nil {
			return err
		}
		if seen[key] {
			return invalid("duplicate_key", "%s appears twice; send each key once", field)
		}
		seen[key] = true
		child, err := childType(t, fields, field, key)
		if err != nil {
			return err
		}
		if err := w.value(field, child); err != nil {
			return err
		}
	}
	return w.end()
}

func (w *walker) array(path string, t reflect.Type) error {
	t = freeForm(t)
	var elem reflect.Type
	if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
		elem = t.Elem()
	}
	for i := 0; w.dec.More(); i++ {
		if err := w.value(fmt.Sprintf("%s[%d]", path, i), elem); err != nil {
			return err
		}
	}
	return w.end()
}

// end reads the closing delimiter of an object or array.
func (w *walker) end() error {
	if _, err := w.dec.Token(); err != nil {
		return describe(err)
	}
	return nil
}

// childType is the Go type that the value of key will fill; an unknown
// key of a struct is refused, naming the field it resembles if any.
func childType(t reflect.Type, fields map[string]reflect.Type, field, key string) (reflect.Type, error) {
	if fields != nil {
		child, ok := fields[key]
		if ok {
			return child, nil
		}
		for name := range fields {
			if strings.EqualFold(name, key) {
				return nil, invalid("unknown_field", "%s is not a field; keys are case-sensitive: did you mean %s?", field, name)
			}
		}
		return nil, invalid("unknown_field", "%s is not a field of this request", field)
	}
	if t != nil && t.Kind() == reflect.Map {
		return t.Elem(), nil
	}
	return nil, nil
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// freeForm returns t without pointers, or nil when the value may take any
// shape (an interface or a type decoding itself, such as json.RawMessage).
func freeForm(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		if t.Implements(unmarshalerType) {
			return nil
		}
		t = t.Elem()
	}
	if t == nil || t.Kind() == reflect.Interface || reflect.PointerTo(t).Implements(unmarshalerType) {
		return nil
	}
	return t
}

var fieldCache sync.Map // reflect.Type → map[string]reflect.Type

// fieldsOf maps the JSON names of a struct's fields to their types, as
// encoding/json sees them (tag name, else the Go name; "-" skipped;
// untagged embedded structs promote their fields).
func fieldsOf(t reflect.Type) map[string]reflect.Type {
	if cached, ok := fieldCache.Load(t); ok {
		return cached.(map[string]reflect.Type)
	}
	fields := make(map[string]reflect.Type)
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		if f.Anonymous && name == "" {
			if embedded := freeForm(f.Type); embedded != nil && embedded.Kind() == reflect.Struct {
				for k, v := range fieldsOf(embedded) {
					fields[k] = v
				}
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = f.Type
	}
	fieldCache.Store(t, fields)
	return fields
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// checkText refuses control characters other than tab, LF and CR. They
// have no place in the broker's text, and the databases disagree about
// them (SQLite fails on a NUL, MariaDB drops it), so they are refused
// before anything is stored, with the field named.
func checkText(field, s string) error {
	for _, r := range s {
		if unicode.IsControl(r) && r != '\t' && r != '\n' && r != '\r' {
			return invalid("control_character", "%s contains the control character %U; only tab, line feed and carriage return are allowed", field, r)
		}
	}
	return nil
}

func describe(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "the body"
		}
		return invalid("invalid_field_type", "%s must be %s, not %s", field, typeName(typeErr.Type), typeErr.Value)
	case errors.As(err, &syntaxErr):
		return invalid("invalid_json", "malformed JSON at byte %d", syntaxErr.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return invalid("invalid_json", "the JSON object is truncated")
	default:
		return invalid("invalid_json", "malformed JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
}

func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "of type " + t.String()
}
