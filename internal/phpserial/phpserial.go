// Package phpserial reads and writes the format of PHP's serialize() so
// that a value can be changed in place and written back byte for byte as
// it was, apart from the change. WordPress keeps device lists this way in
// wp_usermeta, and PHP code reads them back; a codec that re-formatted
// floats or reordered keys would corrupt what it did not mean to touch.
//
// Decoding keeps the text of every number as written, and arrays and
// objects keep their entries in order, so Marshal(Unmarshal(b)) == b for
// everything Unmarshal accepts. References (r:, R:) and custom
// serialization (C:) are refused: device lists never hold them and they
// cannot be edited safely without knowing the PHP classes.
package phpserial

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Kind is the PHP type of a Value.
type Kind uint8

// Kinds.
const (
	Null Kind = iota
	Bool
	Int
	Float
	String
	Array
	Object
)

// Value is a PHP value.
type Value struct {
	Kind Kind
	Bool bool
	Int  int64
	// Float is the value of a Float; its text as PHP wrote it is kept.
	Float float64
	// Str is the bytes of a String (PHP strings are bytes, not UTF-8).
	Str string
	// Class is the class name of an Object.
	Class string
	// Entries of an Array or the properties of an Object, in order.
	Entries []Entry

	// text is the number as written, so it is written back unchanged.
	text string
}

// Entry is a key and value of an array. Keys are Int or String.
type Entry struct {
	Key   Value
	Value Value
}

// NewString, NewInt and NewBool make values to store.
func NewString(s string) Value { return Value{Kind: String, Str: s} }
func NewInt(n int64) Value     { return Value{Kind: Int, Int: n} }
func NewBool(b bool) Value     { return Value{Kind: Bool, Bool: b} }

// Get returns the value under key in an Array or Object: a string key, or
// an integer key whose decimal form is key (PHP turns "5" into 5).
func (v *Value) Get(key string) (*Value, bool) {
	for i := range v.Entries {
		if v.Entries[i].Key.KeyString() == key {
			return &v.Entries[i].Value, true
		}
	}
	return nil, false
}

// KeyString is the key as a string.
func (v Value) KeyString() string {
	if v.Kind == Int {
		return strconv.FormatInt(v.Int, 10)
	}
	return v.Str
}

// ErrSyntax wraps every decoding error.
var ErrSyntax = errors.New("phpserial: invalid serialized data")

// maxDepth bounds nesting so hostile input cannot exhaust the stack.
const maxDepth = 64

// Unmarshal decodes one value that must fill data.
func Unmarshal(data []byte) (*Value, error) {
	d := decoder{data: data}
	v, err := d.value(0)
	if err != nil {
		return nil, err
	}
	if d.pos != len(data) {
		return nil, d.errf("data after the value")
	}
	return &v, nil
}

type decoder struct {
	data []byte
	pos  int
}

func (d *decoder) errf(format string, args ...any) error {
	return fmt.Errorf("%w at byte %d: %s", ErrSyntax, d.pos, fmt.Sprintf(format, args...))
}

func (d *decoder) expect(s string) error {
	if !bytes.HasPrefix(d.data[d.pos:], []byte(s)) {
		return d.errf("expected %q", s)
	}
	d.pos += len(s)
	return nil
}

// until returns the text up to the next occurrence of end and skips it.
func (d *decoder) until(end byte) (string, error) {
	i := bytes.IndexByte(d.data[d.pos:], end)
	if i < 0 {
		return "", d.errf("expected %q", end)
	}
	s := string(d.data[d.pos : d.pos+i])
	d.pos += i + 1
	return s, nil
}

func (d *decoder) value(depth int) (Value, error) {
	if depth > maxDepth {
		return Value{}, d.errf("nested deeper than %d", maxDepth)
	}
	if d.pos+1 >= len(d.data) {
		return Value{}, d.errf("unexpected end")
	}
	kind := d.data[d.pos]
	if kind == 'N' {
		d.pos++
		return Value{Kind: Null}, d.expect(";")
	}
	d.pos++
	if err := d.expect(":"); err != nil {
		return Value{}, err
	}
	switch kind {
	case 'b':
		s, err := d.until(';')
		if err != nil || (s != "0" && s != "1") {
			return Value{}, d.errf("bad boolean")
		}
		return Value{Kind: Bool, Bool: s == "1"}, nil
	case 'i':
		s, err := d.until(';')
		if err != nil {
			return Value{}, err
		}
		n, err := parseInt(s)
		if err != nil {
			return Value{}, d.errf("bad integer %q", s)
		}
		return Value{Kind: Int, Int: n, text: s}, nil
	case 'd':
		s, err := d.until(';')
		if err != nil {
			return Value{}, err
		}
		f, err := parseFloat(s)
		if err != nil {
			return Value{}, d.errf("bad float %q", s)
		}
		return Value{Kind: Float, Float: f, text: s}, nil
	case 's':
		s, err := d.str()
		if err != nil {
			return Value{}, err
		}
		return Value{Kind: String, Str: s}, d.expect(";")
	case 'a':
		entries, err := d.entries(depth)
		return Value{Kind: Array, Entries: entries}, err
	case 'O':
		class, err := d.str()
		if err != nil {
			return Value{}, err
		}
		if err := d.expect(":"); err != nil {
			return Value{}, err
		}
		entries, err := d.entries(depth)
		return Value{Kind: Object, Class: class, Entries: entries}, err
	}
	d.pos -= 2
	return Value{}, d.errf("unsupported type %q", kind)
}

// str reads `<len>:"<bytes>"`.
func (d *decoder) str() (string, error) {
	n, err := d.length()
	if err != nil {
		return "", err
	}
	if err := d.expect(`"`); err != nil {
		return "", err
	}
	if n > len(d.data)-d.pos {
		return "", d.errf("string of %d bytes runs past the end", n)
	}
	s := string(d.data[d.pos : d.pos+n])
	d.pos += n
	return s, d.expect(`"`)
}

// length reads a non-negative decimal count and the colon after it.
func (d *decoder) length() (int, error) {
	s, err := d.until(':')
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || strconv.Itoa(n) != s {
		return 0, d.errf("bad length %q", s)
	}
	return n, nil
}

// entries reads `<count>:{<key><value>...}`.
func (d *decoder) entries(depth int) ([]Entry, error) {
	n, err := d.length()
	if err != nil {
		return nil, err
	}
	if err := d.expect("{"); err != nil {
		return nil, err
	}
	// Each entry takes at least 6 bytes (i:0;N;), which bounds n.
	if n > (len(d.data)-d.pos)/6 {
		return nil, d.errf("%d entries cannot fit", n)
	}
	entries := make([]Entry, 0, n)
	for range n {
		key, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		if key.Kind != Int && key.Kind != String {
			return nil, d.errf("array key must be an integer or a string")
		}
		val, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		entries = append(entries, Entry{Key: key, Value: val})
	}
	return entries, d.expect("}")
}

// parseInt accepts PHP's integer text: an optional sign and digits.
func parseInt(s string) (int64, error) {
	if s == "" || s == "+" || s == "-" {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseInt(s, 10, 64)
}

// parseFloat accepts PHP's float text, including INF, -INF and NAN.
func parseFloat(s string) (float64, error) {
	switch s {
	case "INF":
		return math.Inf(1), nil
	case "-INF":
		return math.Inf(-1), nil
	case "NAN":
		return math.NaN(), nil
	}
	if s == "" || strings.ContainsAny(s, "xXpP_") || strings.EqualFold(strings.TrimLeft(s, "+-"), "inf") ||
		strings.EqualFold(strings.TrimLeft(s, "+-"), "infinity") || strings.EqualFold(s, "nan") {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseFloat(s, 64)
}

// Marshal encodes v as PHP's serialize() does.
func Marshal(v *Value) []byte {
	var b []byte
	return appendValue(b, v)
}

func appendValue(b []byte, v *Value) []byte {
	switch v.Kind {
	case Null:
		return append(b, "N;"...)
	case Bool:
		if v.Bool {
			return append(b, "b:1;"...)
		}
		return append(b, "b:0;"...)
	case Int:
		b = append(b, "i:"...)
		if v.text != "" {
			b = append(b, v.text...)
		} else {
			b = strconv.AppendInt(b, v.Int, 10)
		}
		return append(b, ';')
	case Float:
		b = append(b, "d:"...)
		if v.text != "" {
			b = append(b, v.text...)
		} else {
			b = appendFloat(b, v.Float)
		}
		return append(b, ';')
	case String:
		return append(appendStr(append(b, "s:"...), v.Str), ';')
	case Object:
		b = appendStr(append(b, "O:"...), v.Class)
		b = append(b, ':')
	default:
		b = append(b, "a:"...)
	}
	b = strconv.AppendInt(b, int64(len(v.Entries)), 10)
	b = append(b, ":{"...)
	for i := range v.Entries {
		b = appendValue(b, &v.Entries[i].Key)
		b = appendValue(b, &v.Entries[i].Value)
	}
	return append(b, '}')
}

func appendStr(b []byte, s string) []byte {
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, `:"`...)
	b = append(b, s...)
	return append(b, '"')
}

// appendFloat writes f as PHP 7.1+ does with serialize_precision = -1: the
// shortest text that reads back as f, in exponent form (mantissa with at
// least one decimal, signed exponent) when the decimal exponent is below
// -4 or above 16 (php_gcvt with 17 digits).
func appendFloat(b []byte, f float64) []byte {
	switch {
	case math.IsInf(f, 1):
		return append(b, "INF"...)
	case math.IsInf(f, -1):
		return append(b, "-INF"...)
	case math.IsNaN(f):
		return append(b, "NAN"...)
	}
	if f == 0 {
		if math.Signbit(f) {
			return append(b, "-0"...)
		}
		return append(b, '0')
	}
	s := strconv.FormatFloat(f, 'E', -1, 64)
	mant, e, _ := strings.Cut(s, "E")
	n, _ := strconv.Atoi(e)
	if n >= -4 && n <= 16 {
		return strconv.AppendFloat(b, f, 'f', -1, 64)
	}
	if !strings.Contains(mant, ".") {
		mant += ".0"
	}
	return fmt.Appendf(b, "%sE%+d", mant, n)
}
