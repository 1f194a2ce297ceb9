package device_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/msgbroker/caddy-msgbroker/internal/apivalidate"
)

// FuzzDeviceRequest posts arbitrary bodies, as a form, as multipart and as
// neither, to a real gateway (built-in directory, in-process store, a 1 KiB
// message limit) and checks every answer keeps the original server's
// shape: a 200 carries one of the original codes 0–2, anything else is a
// 400 with its own code of 3 or more, the body is exactly one JSON object
// `{"message": …, "code": …}` (plus "name" on a successful auth), and the
// exchange matches the OpenAPI document. Never a 500, a panic or another
// shape.
//
//	go test ./modules/device -run '^$' -fuzz FuzzDeviceRequest -fuzztime 60s
func FuzzDeviceRequest(f *testing.F) {
	api := gateway(f, "", "key_pool 2\nmax_message_size 1KiB")
	const boundary = "fuzzboundary"
	contentTypes := []string{"application/x-www-form-urlencoded", "multipart/form-data; boundary=" + boundary, "text/plain", ""}
	multipart := func(fields ...string) string {
		var b strings.Builder
		for i := 0; i+1 < len(fields); i += 2 {
			b.WriteString("--" + boundary + "\r\nContent-Disposition: form-data; name=\"" + fields[i] + "\"\r\n\r\n" + fields[i+1] + "\r\n")
		}
		return b.String() + "--" + boundary + "--\r\n"
	}
	for _, seed := range []struct {
		contentType uint8
		body        string
	}{
		{0, "key=" + key + "&status=on"},
		{0, "key=" + key + "&status=off"},
		{0, "key=" + key + "&mode=hpke&status=on"},
		{0, "key=" + key + "&mode=rsa&status=off"},
		{0, "key=" + key + "&status=maybe"},
		{0, "key=" + key + "&status=on&message=x"},
		{0, "key=" + key + `&message={"encryptedKey":"AA==","iv":"AAAAAAAAAAAAAAAAAAAAAA==","ciphertext":"AA==","minute":1}`},
		{0, "key=" + key + "&message=%7B%7D"},
		{0, "key=%zz&status=on"},
		{0, "key=" + strings.Repeat("k", 200) + "&status=on"},
		{0, "key=" + user + "&status=on"},
		{0, "key=" + key + "&message=" + strings.Repeat("A", 20<<10)},
		{0, ""},
		{1, multipart("key", key, "status", "on")},
		{1, multipart("key", key, "message", "{")},
		{1, "--" + boundary + "\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nunterminated"},
		{2, "key=" + key + "&status=on"},
		{3, "key=" + key + "&status=off"},
	} {
		f.Add(seed.contentType, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, contentType uint8, body []byte) {
		req, err := http.NewRequest(http.MethodPost, api, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if ct := contentTypes[int(contentType)%len(contentTypes)]; ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		resp, err := apivalidate.Client(t, &http.Client{Timeout: 20 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		var answer struct {
			Message *string `json:"message"`
			Code    *int    `json:"code"`
			Name    *string `json:"name"`
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&answer); err != nil || dec.More() || answer.Message == nil || answer.Code == nil || !bytes.HasPrefix(raw, []byte(`{"message": `)) {
			t.Fatalf("%d %q: not the original answer's shape (%v)", resp.StatusCode, raw, err)
		}
		switch code := *answer.Code; resp.StatusCode {
		case http.StatusOK:
			if code < 0 || code > 2 {
				t.Fatalf("200 with code %d: %s", code, raw)
			}
			isAuth := code == 0 && *answer.Message != "deleted" && *answer.Message != "delivered"
			if (answer.Name != nil) != isAuth {
				t.Fatalf("name on an answer other than a successful auth, or missing on one: %s", raw)
			}
		case http.StatusBadRequest:
			if code < 3 || code == 8 {
				t.Fatalf("400 with code %d: %s", code, raw)
			}
		default:
			t.Fatalf("status %d: %s", resp.StatusCode, raw)
		}
	})
}
