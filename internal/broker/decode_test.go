package broker

import (
	"strings"
	"testing"

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
		"message_body":"héllo","metadata":{"z":1,"a":{"y":2,"b":3}},"unknown":"ignored"}`), 0)
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

func TestDecodeDeliverRejectsMalformedInput(t *testing.T) {
	cases := []struct{ name, body, code string }{
		{"empty", ``, "invalid_json"},
		{"missing id", `{}`, "missing_message_id"},
		{"bad id", `{"message_id":"x"}`, "invalid_message_id"},
		{"id wrong type", `{"message_id":["x"]}`, "invalid_field_type"},
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
			if got := legal(from, to); got != legalMoves[[2]string{from, to}] {
				t.Errorf("legal(%s → %s) = %v", from, to, got)
			}
		}
	}
}

// FuzzDecodeRegister: any input is either a valid request or an Invalid
// error, never a panic or an internal error.
func FuzzDecodeRegister(f *testing.F) {
	f.Add([]byte(`{"sender_number":"+4915200000000","message_body":"x","metadata":{"a":1}}`))
	f.Add([]byte(`{"message_id":"0b6f8a9e-5c1d-4e8f-9a7b-2c3d4e5f6a7b","sender_number":"+1","message_body":""}`))
	f.Add([]byte(`{"metadata":[{"a":null}]}`))
	f.Add([]byte("\xff\xfe{"))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := DecodeRegister(data, 64)
		if err != nil {
			if apperr.KindOf(err) != apperr.Invalid {
				t.Fatalf("non-Invalid error %v", err)
			}
			return
		}
		if req.SenderNumber == "" || req.MessageBody == "" {
			t.Fatalf("accepted an incomplete request %+v", req)
		}
	})
}

func FuzzDecodeStatus(f *testing.F) {
	f.Add([]byte(`{"status":"retrying","error":"timeout","reason":"smsc_down"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := DecodeStatus(data); err != nil && apperr.KindOf(err) != apperr.Invalid {
			t.Fatalf("non-Invalid error %v", err)
		}
	})
}

func FuzzDecodeDeliver(f *testing.F) {
	f.Add([]byte(`{"message_id":"0b6f8a9e-5c1d-4e8f-9a7b-2c3d4e5f6a7b"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := DecodeDeliver(data); err != nil && apperr.KindOf(err) != apperr.Invalid {
			t.Fatalf("non-Invalid error %v", err)
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
	deep := strings.Repeat(`{"a":`, 33) + "1" + strings.Repeat("}", 33)
	_, err = DecodeRegister([]byte(`{"sender_number":"+4915200000000","message_body":"x","metadata":`+deep+`}`), 0)
	if e, ok := apperr.As(err); !ok || e.Code != "invalid_metadata" {
		t.Fatalf("33 levels of metadata = %v, want invalid_metadata", err)
	}
	ok := strings.Repeat(`{"a":`, 32) + "1" + strings.Repeat("}", 32)
	if _, err := DecodeRegister([]byte(`{"sender_number":"+4915200000000","message_body":"x","metadata":`+ok+`}`), 0); err != nil {
		t.Fatalf("32 levels refused: %v", err)
	}
}
