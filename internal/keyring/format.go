package keyring

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// fileVersion is the only keyring file version this package reads.
const fileVersion = 1

// maxShownField bounds the unknown field names quoted in errors.
const maxShownField = 24

// file is the JSON form of a keyring file. Every field is read as a
// plain string or number and checked here, so that each problem gets our
// own message: the errors of time.Parse, for one, quote the value, which
// in a file with shuffled fields could be key material.
type file struct {
	Version int       `json:"version"`
	Keys    []fileKey `json:"keys"`
}

type fileKey struct {
	ID      string `json:"id"`
	Created string `json:"created,omitempty"`
	Key     string `json:"key"`
}

// Parse reads a keyring file (see the package documentation). Errors say
// what is wrong and where, never showing key material.
func Parse(data []byte) (*Keyring, error) {
	r, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	return fromRing(r), nil
}

func parse(data []byte) (*ring, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("file is empty")
	}
	var f file
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, jsonError(data, err)
	}
	end := dec.InputOffset()
	if _, err := dec.Token(); err != io.EOF {
		end += int64(len(data[end:]) - len(bytes.TrimLeft(data[end:], " \t\r\n")))
		return nil, fmt.Errorf("%s: unexpected data after the JSON object", position(data, end))
	}
	switch {
	case f.Version == 0:
		return nil, fmt.Errorf("version is missing or 0; expected %d", fileVersion)
	case f.Version != fileVersion:
		return nil, fmt.Errorf("unsupported version %d; expected %d", f.Version, fileVersion)
	case len(f.Keys) == 0:
		return nil, errors.New("no keys; a keyring needs at least one")
	}
	keys := make([]Key, len(f.Keys))
	firstUse := make(map[string]int, len(f.Keys))
	for i, fk := range f.Keys {
		n := i + 1
		if err := validateID(fk.ID); err != nil {
			return nil, fmt.Errorf("key %d: %w", n, err)
		}
		if first, dup := firstUse[fk.ID]; dup {
			return nil, fmt.Errorf("key %d (id %q): duplicate id, already used by key %d", n, fk.ID, first)
		}
		firstUse[fk.ID] = n
		k, err := decodeKey(fk)
		if err != nil {
			return nil, fmt.Errorf("key %d (id %q): %w", n, fk.ID, err)
		}
		keys[i] = k
	}
	return newRing(keys)
}

// decodeKey checks and decodes one entry whose id is already valid.
func decodeKey(fk fileKey) (Key, error) {
	k := Key{id: fk.ID}
	if fk.Key == "" {
		return Key{}, errors.New("key is missing")
	}
	material, err := base64.StdEncoding.DecodeString(fk.Key)
	if err != nil {
		var corrupt base64.CorruptInputError
		if errors.As(err, &corrupt) {
			return Key{}, fmt.Errorf("key is not valid standard base64 (bad input at character %d)", int64(corrupt)+1)
		}
		return Key{}, errors.New("key is not valid standard base64")
	}
	if len(material) != KeySize {
		return Key{}, fmt.Errorf("key must be %d bytes, got %d", KeySize, len(material))
	}
	copy(k.material[:], material)
	if fk.Created != "" {
		// The value is not quoted back: a file with shuffled fields
		// could have key material here.
		if k.created, err = time.Parse(time.RFC3339, fk.Created); err != nil {
			return Key{}, errors.New("created must be an RFC 3339 time such as 2026-11-24T10:00:00Z")
		}
	}
	return k, nil
}

// jsonError rewrites a decoding error with a line and column and without
// quoting the input: a syntax error inside the "key" string would
// otherwise echo a character of key material.
func jsonError(data []byte, err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		// Offset counts the offending byte as read; so does the type
		// error's, for the value's last byte.
		return fmt.Errorf("%s: invalid JSON", position(data, syntax.Offset-1))
	case errors.As(err, &typ):
		field := "the file"
		if typ.Field != "" {
			field = strconv.Quote(typ.Field)
		}
		// typ.Value is not used: for numbers it includes the literal.
		return fmt.Errorf("%s: %s must be %s", position(data, typ.Offset-1), field, kindName(typ.Type.Kind()))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("invalid JSON: the file ends in the middle of a value")
	}
	// What remains is the unknown-field error, which quotes the field's
	// name. A long name is more likely key material pasted in the wrong
	// place than a typo, so only short names are shown.
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if len(msg) > len(`unknown field ""`)+maxShownField {
		return fmt.Errorf("unknown field with a name longer than %d characters", maxShownField)
	}
	return errors.New(msg)
}

func kindName(k reflect.Kind) string {
	switch k {
	case reflect.Struct:
		return "an object"
	case reflect.Slice:
		return "an array"
	case reflect.String:
		return "a string"
	default:
		return "an integer"
	}
}

// position describes where the byte at offset is, as a 1-based "line L,
// column C".
func position(data []byte, offset int64) string {
	offset = min(max(offset, 0), int64(len(data)))
	before := data[:offset]
	line := bytes.Count(before, []byte("\n")) + 1
	col := len(before) - bytes.LastIndexByte(before, '\n')
	return fmt.Sprintf("line %d, column %d", line, col)
}

// Marshal encodes the keyring in the file format, key material included.
// It fails for an empty keyring, which Parse would not read back.
func (kr *Keyring) Marshal() ([]byte, error) {
	r := kr.state.Load()
	if r == nil {
		return nil, errors.New("keyring: cannot marshal a keyring with no keys")
	}
	f := file{Version: fileVersion, Keys: make([]fileKey, len(r.keys))}
	for i, k := range r.keys {
		f.Keys[i] = fileKey{ID: k.id, Key: base64.StdEncoding.EncodeToString(k.material[:])}
		if !k.created.IsZero() {
			f.Keys[i].Created = k.created.Format(time.RFC3339)
		}
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	return append(data, '\n'), nil
}
