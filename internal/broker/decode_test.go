package broker

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
)

func TestDecodeRegisterRejectsMalformedInput(t *testing.T) {
	cases := []struct {
		name, body, code string
	}{
		{"empty", ``, "invalid_json"},
		{"whitespace", "  \n", "invalid_json"},
		{"array", `[1]`, "invalid_json"},
		{"string", `"x"`, "invalid_json"},
		{"truncated", `{"sender_number": "+4915200000000"`, "invalid_json"},
		{"syntax", `{"sender_number": +49}`, "invalid_json"},
		{"trailing object", `{"sender_number":"+4915200000000","message_body":"x"}{}`, "invalid_json"},
		{"number as number", `{"sender_number": 4915200000000, "message_body": "x"}`, "invalid_field_type"},
		{"body as object", `{"sender_number": "+4915200000000", "message_body": {}}`, "invalid_field_type"},
		{"id as number", `{"message_id": 7, "sender_number": "+4915200000000", "message_body": "x"}`, "invalid_field_type"},
		{"id not uuid", `{"message_id": "msg-1", "sender_number": "+4915200000000", "message_body": "x"}`, "invalid_message_id"},
		{"id uuid without dashes", `{"message_id": "0b6f8a9e5c1d4e8f9a7b2c3d4e5f6a7b", "sender_number": "+4915200000000", "message_body": "x"}`, "invalid_message_id"},
		{"missing number", `{"message_body": "x"}`, "missing_sender_number"},
		{"national number", `{"sender_number": "015200000000", "message_body": "x"}`, "invalid_sender_number"},
		{"number with spaces", `{"sender_number": "+49 152 00000000", "message_body": "x"}`, "invalid_sender_number"},
		{"missing body", `{"sender_number": "+4915200000000"}`, "missing_message_body"},
		{"body too long", `{"sender_number": "+4915200000000", "message_body": "` + strings.Repeat("a", 11) + `"}`, "message_body_too_long"},
		{"metadata array", `{"sender_number": "+4915200000000", "message_body": "x", "metadata": []}`, "invalid_metadata"},
		{"metadata string", `{"sender_number": "+4915200000000", "message_body": "x", "metadata": "a"}`, "invalid_metadata"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeRegister([]byte(tc.body), 10)
			e, ok := apperr.As(err)
			if !ok || e.Kind != apperr.Invalid || e.Code != tc.code || e.Message == "" {
				t.Fatalf("DecodeRegister(%q) = %v, want Invalid %s", tc.body, err, tc.code)
			}
		})
	}
}

func TestDecodeRegisterNormalizes(t *testing.T) {
	req, err := DecodeRegister([]byte(`{"message_id":"0B6F8A9E-5C1D-4E8F-9A7B-2C3D4E5F6A7B","sender_number":"+4915200000000",
		"message_body":"héllo","metadata":{"z":1,"a":{"y":2,"b":3}}}`), 0)
	if err != nil {
		t.Fatal(err)
	}
	if req.MessageID != "0b6f8a9e-5c1d-4e8f-9a7b-2c3d4e5f6a7b" {
		t.Errorf("message id not canonical: %s", req.MessageID)
	}
	if string(req.Metadata) != `{"a":{"b":3,"y":2},"z":1}` {
		t.Errorf("metadata not canonical: %s", req.Metadata)
	}
	null, err := DecodeRegister([]byte(`{"sender_number":"+4915200000000","message_body":"x","metadata":null}`), 0)
	if err != nil || null.Metadata != nil {
		t.Errorf("null metadata = %s, %v", null.Metadata, err)
	}
}

// TestDecodersRefuseInputTheyWouldRewrite: encoding/json alone would store
// U+FFFD for bad UTF-8 and lone surrogates, keep the last of duplicate
// keys, match keys in any case and drop unknown ones. Each must be a 400
// with its own code instead, from every decoder.
func TestDecodersRefuseInputTheyWouldRewrite(t *testing.T) {
	const number = `"sender_number":"+4915200000000"`
	cases := []struct {
		name, body, code, mentions string
		decode                     func([]byte) error
	}{
		{"invalid UTF-8 in the body", `{` + number + `,"message_body":"caf` + "\xe9" + `"}`, "invalid_utf8", "UTF-8", register},
		{"invalid UTF-8 in a key", `{` + number + `,"message_body":"x","metadata":{"` + "\xff" + `":1}}`, "invalid_utf8", "UTF-8", register},
		{"lone high surrogate", `{` + number + `,"message_body":"a\ud800b"}`, "lone_surrogate", "surrogate", register},
		{"lone low surrogate", `{` + number + `,"message_body":"\udc00"}`, "lone_surrogate", "surrogate", register},
		{"high surrogate before a non-surrogate", `{` + number + `,"message_body":"\ud800\u0041"}`, "lone_surrogate", "surrogate", register},
		{"surrogate in an error", `{"status":"failed","error":"\ud83d"}`, "lone_surrogate", "surrogate", status},
		{"duplicate key", `{` + number + `,"message_body":"a","message_body":"b"}`, "duplicate_key", "message_body", register},
		{"duplicate key in metadata", `{` + number + `,"message_body":"a","metadata":{"k":{"x":1,"x":2}}}`, "duplicate_key", "metadata.k.x", register},
		{"duplicate key spelled with an escape", `{` + number + `,"message_body":"a","metadata":{"a":1,"\u0061":2}}`, "duplicate_key", "metadata.a", register},
		{"duplicate status", `{"status":"failed","status":"delivered"}`, "duplicate_key", "status", status},
		{"duplicate id", `{"message_id":"0b6f8a9e-5c1d-4e8f-9a7b-2c3d4e5f6a7b","message_id":"0b6f8a9e-5c1d-4e8f-9a7b-2c3d4e5f6a7c"}`, "duplicate_key", "message_id", deliver},
		{"key in upper case", `{` + number + `,"MESSAGE_BODY":"x"}`, "unknown_field", "message_body", register},
		{"key in mixed case", `{"Status":"failed"}`, "unknown_field", "status", status},
		{"unknown key", `{` + number + `,"message_body":"x","priority":1}`, "unknown_field", "priority", register},
		{"unknown key on deliver", `{"message_id":"0b6f8a9e-5c1d-4e8f-9a7b-2c3d4e5f6a7b","force":true}`, "unknown_field", "force", deliver},
		{"NUL in an error", `{"status":"failed","error":"smsc\u0000down"}`, "control_character", "error", status},
		{"raw control byte in an error", "{\"status\":\"failed\",\"error\":\"a\x7fb\"}", "control_character", "error", status},
		{"C1 control in the body", `{` + number + `,"message_body":"a\u0085b"}`, "control_character", "message_body", register},
		{"escape in the body", `{` + number + `,"message_body":"\u001b[31m"}`, "control_character", "message_body", register},
		{"control in a metadata value", `{` + number + `,"message_body":"x","metadata":{"tags":["ok","\u0007"]}}`, "control_character", "metadata.tags[1]", register},
		{"control in a metadata key", `{` + number + `,"message_body":"x","metadata":{"a\u0000":1}}`, "control_character", "metadata.a", register},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.decode([]byte(tc.body))
			e, ok := apperr.As(err)
			if !ok || e.Kind != apperr.Invalid || e.Code != tc.code || !strings.Contains(e.Message, tc.mentions) {
				t.Fatalf("decoding %q = %v, want Invalid %s mentioning %q", tc.body, err, tc.code, tc.mentions)
			}
		})
	}
}

func register(data []byte) error { _, err := DecodeRegister(data, 0); return err }
func status(data []byte) error   { _, err := DecodeStatus(data); return err }
func deliver(data []byte) error  { _, err := DecodeDeliver(data); return err }

// TestDecodersKeepTextAsSent: what is allowed arrives unchanged — tab, LF
// and CR, a surrogate pair, characters outside the BMP.
func TestDecodersKeepTextAsSent(t *testing.T) {
	req, err := DecodeRegister([]byte(`{"sender_number":"+4915200000000","message_body":"line 1\n\tline 2\r\n\ud83d\ude00 ü 😀"}`), 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := "line 1\n\tline 2\r\n😀 ü 😀"; req.MessageBody != want {
		t.Fatalf("message_body = %q, want %q", req.MessageBody, want)
	}
	st, err := DecodeStatus([]byte(`{"status":"failed","error":"timeout\nafter 30 s","reason":"timeout"}`))
	if err != nil || st.Error != "timeout\nafter 30 s" {
		t.Fatalf("DecodeStatus = %+v, %v", st, err)
	}
}

func TestBodyLimitCountsCharactersNotBytes(t *testing.T) {
	body := `{"sender_number":"+4915200000000","message_body":"` + strings.Repeat("ü", 10) + `"}`
	if _, err := DecodeRegister([]byte(body), 10); err != nil {
		t.Fatalf("10 two-byte characters refused under a 10-character limit: %v", err)
	}
}

func TestDecodeStatusRejectsMalformedInput(t *testing.T) {
	cases := []struct{ name, body, code string }{
		{"empty", ``, "invalid_json"},
		{"missing", `{}`, "missing_status"},
		{"unknown", `{"status":"sent"}`, "invalid_status"},
		{"queued is not a report", `{"status":"queued"}`, "invalid_status"},
		{"wrong type", `{"status":1}`, "invalid_field_type"},
		{"long error", `{"status":"failed","error":"` + strings.Repeat("e", 1001) + `"}`, "error_too_long"},
		{"bad reason", `{"status":"failed","reason":"Bad Reason"}`, "invalid_reason"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeStatus([]byte(tc.body))
			if e, ok := apperr.As(err); !ok || e.Code != tc.code {
				t.Fatalf("DecodeStatus(%q) = %v, want %s", tc.body, err, tc.code)
			}
		})
	}
}

// TestDecodeStatusAcceptsTheLimits: an error of exactly the limit and a
// reason of 32 characters are accepted; reason and error may be omitted.
func TestDecodeStatusAcceptsTheLimits(t *testing.T) {
	longest := strings.Repeat("é", maxErrorChars)
	reason := strings.Repeat("r", 32)
	req, err := DecodeStatus([]byte(`{"status":"failed","error":"` + longest + `","reason":"` + reason + `"}`))
	if err != nil || req.Error != longest || req.Reason != reason || req.Status != "failed" {
		t.Fatalf("DecodeStatus at the limits = %v", err)
	}
	if req, err := DecodeStatus([]byte(`{"status":"processing"}`)); err != nil || req.Error != "" || req.Reason != "" {
		t.Fatalf("a bare status = %+v, %v", req, err)
	}
	if _, err := DecodeStatus([]byte(`{"status":"failed","reason":"` + reason + `r"}`)); err == nil {
		t.Fatal("a 33-character reason was accepted")
	}
}

func TestDecodeDeliverRejectsMalformedInput(t *testing.T) {
	cases := []struct{ name, body, code string }{
		{"empty", ``, "invalid_json"},
		{"missing id", `{}`, "missing_message_id"},
		{"bad id", `{"message_id":"x"}`, "invalid_message_id"},
		{"id wrong type", `{"message_id":["x"]}`, "invalid_field_type"},
		{"id without dashes", `{"message_id":"0b6f8a9e5c1d4e8f9a7b2c3d4e5f6a7b"}`, "invalid_message_id"},
		{"id as URN", `{"message_id":"urn:uuid:0b6f8a9e-5c1d-4e8f-9a7b-2c3d4e5f6a7b"}`, "invalid_message_id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeDeliver([]byte(tc.body))
			if e, ok := apperr.As(err); !ok || e.Code != tc.code {
				t.Fatalf("DecodeDeliver(%q) = %v, want %s", tc.body, err, tc.code)
			}
		})
	}
}

func TestTransitions(t *testing.T) {
	legalMoves := map[[2]string]bool{
		{"queued", "processing"}: true, {"queued", "delivered"}: true,
		{"processing", "retrying"}: true, {"processing", "delivered"}: true, {"processing", "failed"}: true,
		{"retrying", "processing"}: true, {"retrying", "retrying"}: true, {"retrying", "delivered"}: true, {"retrying", "failed"}: true,
	}
	states := []string{"queued", "processing", "retrying", "delivered", "failed"}
	for _, from := range states {
		for _, to := range states {
			if got := transitionAllowed(from, to); got != legalMoves[[2]string{from, to}] {
				t.Errorf("transitionAllowed(%s → %s) = %v", from, to, got)
			}
		}
	}
}

// checkText fails when an accepted string could not have been stored
// as sent: invalid UTF-8 (or U+FFFD standing in for it) or a control
// character other than tab, LF and CR.
func checkText(t *testing.T, field, s string, data []byte) {
	t.Helper()
	if !utf8.ValidString(s) {
		t.Fatalf("accepted %s %q that is not UTF-8", field, s)
	}
	if strings.ContainsRune(s, utf8.RuneError) && !bytes.Contains(data, []byte("\ufffd")) && !bytes.Contains(data, []byte("\uFFFD")) &&
		!bytes.Contains(data, []byte(string(utf8.RuneError))) {
		t.Fatalf("accepted %s %q with a U+FFFD the input did not have", field, s)
	}
	for _, r := range s {
		if unicode.IsControl(r) && r != '\t' && r != '\n' && r != '\r' {
			t.Fatalf("accepted %s %q with control character %U", field, s, r)
		}
	}
}

// checkInvalid fails unless err is an Invalid error with a code and a
// message: bad input is never an internal error.
func checkInvalid(t *testing.T, err error) {
	t.Helper()
	e, ok := apperr.As(err)
	if !ok || e.Kind != apperr.Invalid || e.Code == "" || e.Message == "" {
		t.Fatalf("refusal %v is not an Invalid error with a code and a message", err)
	}
}

var (
	e164          = regexp.MustCompile(`^\+[1-9][0-9]{7,14}$`)
	canonicalUUID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
)

// metadataDepth is the nesting of a decoded JSON value, counted as
// MaxMetadataDepth counts it.
func metadataDepth(v any) int {
	d := 0
	switch x := v.(type) {
	case map[string]any:
		for _, c := range x {
			d = max(d, metadataDepth(c))
		}
	case []any:
		for _, c := range x {
			d = max(d, metadataDepth(c))
		}
	default:
		return 0
	}
	return d + 1
}

// checkMetadata fails unless accepted metadata is absent or a canonical
// object (re-encoding it gives the same bytes) within the depth limit,
// whose every key and string is storable text.
func checkMetadata(t *testing.T, meta json.RawMessage, data []byte) {
	t.Helper()
	if meta == nil {
		return
	}
	dec := json.NewDecoder(bytes.NewReader(meta))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || obj == nil {
		t.Fatalf("accepted metadata %s is not an object: %v", meta, err)
	}
	if d := metadataDepth(obj); d > MaxMetadataDepth {
		t.Fatalf("accepted metadata nesting %d levels", d)
	}
	var again bytes.Buffer
	enc := json.NewEncoder(&again)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(obj)
	if strings.TrimSuffix(again.String(), "\n") != string(meta) {
		t.Fatalf("metadata %s is not canonical (%s)", meta, again.String())
	}
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				checkText(t, "metadata key", k, data)
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		case string:
			checkText(t, "metadata string", x, data)
		}
	}
	walk(obj)
}

// FuzzDecodeRegister: any input is refused with an Invalid error, or
// accepted as a registration that can be stored exactly as understood:
// a canonical id (or none), an E.164 number, a body of 1 to the limit
// characters, canonical metadata within the depth limit, and only valid,
// control-free text.
func FuzzDecodeRegister(f *testing.F) {
	f.Add([]byte(`{"sender_number":"+4915200000000","message_body":"x","metadata":{"a":1}}`))
	f.Add([]byte(`{"message_id":"0B6F8A9E-5C1D-4E8F-9A7B-2C3D4E5F6A7B","sender_number":"+12025550123","message_body":"line\n\ud83d\ude00"}`))
	f.Add([]byte(`{"message_id":"0b6f8a9e-5c1d-4e8f-9a7b-2c3d4e5f6a7b","sender_number":"+1","message_body":""}`))
	f.Add([]byte(`{"sender_number":"+4915200000000","message_body":"x","metadata":{"b":[{"a":null,"c":1.50}],"a":"\u00e9"}}`))
	f.Add([]byte(`{"sender_number":"+4915200000000","message_body":"\ud800","MESSAGE_BODY":"y"}`))
	f.Add([]byte("{\"sender_number\":\"+4915200000000\",\"message_body\":\"\xff\x00\"}"))
	f.Add([]byte(`{"metadata":[{"a":null}]}`))
	f.Add([]byte("\xff\xfe{"))
	const limit = 64
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := DecodeRegister(data, limit)
		if err != nil {
			checkInvalid(t, err)
			return
		}
		if req.MessageID != "" && !canonicalUUID.MatchString(req.MessageID) {
			t.Fatalf("accepted message_id %q is not a canonical UUID", req.MessageID)
		}
		if !e164.MatchString(req.SenderNumber) {
			t.Fatalf("accepted sender_number %q is not E.164", req.SenderNumber)
		}
		if n := utf8.RuneCountInString(req.MessageBody); n < 1 || n > limit {
			t.Fatalf("accepted a message_body of %d characters", n)
		}
		checkText(t, "message_body", req.MessageBody, data)
		checkMetadata(t, req.Metadata, data)
	})
}

// FuzzDecodeStatus: an accepted update names a status a worker may
// request, an error within its length of storable text, and a reason
// that can be a metric label.
func FuzzDecodeStatus(f *testing.F) {
	f.Add([]byte(`{"status":"retrying","error":"timeout","reason":"smsc_down"}`))
	f.Add([]byte(`{"status":"failed","error":"smsc\u0000down"}`))
	f.Add([]byte(`{"status":"delivered","Status":"failed"}`))
	f.Add([]byte(`{"status":"queued"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := DecodeStatus(data)
		if err != nil {
			checkInvalid(t, err)
			return
		}
		switch req.Status {
		case "processing", "retrying", "delivered", "failed":
		default:
			t.Fatalf("accepted status %q", req.Status)
		}
		if n := utf8.RuneCountInString(req.Error); n > maxErrorChars {
			t.Fatalf("accepted an error of %d characters", n)
		}
		checkText(t, "error", req.Error, data)
		if req.Reason != "" && !regexp.MustCompile(`^[a-z0-9_]{1,32}$`).MatchString(req.Reason) {
			t.Fatalf("accepted reason %q", req.Reason)
		}
	})
}

// FuzzDecodeDeliver: an accepted confirmation carries a canonical UUID.
func FuzzDecodeDeliver(f *testing.F) {
	f.Add([]byte(`{"message_id":"0b6f8a9e-5c1d-4e8f-9a7b-2c3d4e5f6a7b"}`))
	f.Add([]byte(`{"message_id":"0B6F8A9E-5C1D-4E8F-9A7B-2C3D4E5F6A7B"}`))
	f.Add([]byte(`{"message_id":"{0b6f8a9e-5c1d-4e8f-9a7b-2c3d4e5f6a7b}"}`))
	f.Add([]byte(`{"message_id":"urn:uuid:0b6f8a9e-5c1d-4e8f-9a7b-2c3d4e5f6a7b"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := DecodeDeliver(data)
		if err != nil {
			checkInvalid(t, err)
			return
		}
		if !canonicalUUID.MatchString(req.MessageID) {
			t.Fatalf("accepted message_id %q is not a canonical UUID", req.MessageID)
		}
	})
}

func TestMetadataKeepsNumbersExactAndRefusesDeepNesting(t *testing.T) {
	req, err := DecodeRegister([]byte(`{"sender_number":"+4915200000000","message_body":"x",
		"metadata":{"order_id":12345678901234567890,"ratio":0.1,"tag":"<b>&"}}`), 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"order_id":12345678901234567890,"ratio":0.1,"tag":"<b>&"}`; string(req.Metadata) != want {
		t.Fatalf("metadata = %s, want %s", req.Metadata, want)
	}
	deep := strings.Repeat(`{"a":`, MaxMetadataDepth+1) + "1" + strings.Repeat("}", MaxMetadataDepth+1)
	_, err = DecodeRegister([]byte(`{"sender_number":"+4915200000000","message_body":"x","metadata":`+deep+`}`), 0)
	if e, ok := apperr.As(err); !ok || e.Code != "invalid_metadata" {
		t.Fatalf("%d levels of metadata = %v, want invalid_metadata", MaxMetadataDepth+1, err)
	}
	ok := strings.Repeat(`{"a":`, MaxMetadataDepth) + "1" + strings.Repeat("}", MaxMetadataDepth)
	if _, err := DecodeRegister([]byte(`{"sender_number":"+4915200000000","message_body":"x","metadata":`+ok+`}`), 0); err != nil {
		t.Fatalf("%d levels refused: %v", MaxMetadataDepth, err)
	}
}

func TestDecodeDeliverCanonicalizesTheID(t *testing.T) {
	req, err := DecodeDeliver([]byte(`{"message_id":"0B6F8A9E-5C1D-4E8F-9A7B-2C3D4E5F6A7B"}`))
	if err != nil || req.MessageID != "0b6f8a9e-5c1d-4e8f-9a7b-2c3d4e5f6a7b" {
		t.Fatalf("DecodeDeliver = %+v, %v", req, err)
	}
}
