package keyring

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// Base64 of newKey(_, 1) and newKey(_, 2) material, and of a 16-byte key.
var (
	key1B64  = b64(newKey("", 1))
	key2B64  = b64(newKey("", 2))
	shortB64 = base64.StdEncoding.EncodeToString(make([]byte, 16))
)

func b64(k Key) string { return base64.StdEncoding.EncodeToString(k.material[:]) }

// keyFile fills a keyring file template: KEY1 and KEY2 stand for valid
// key material, SHORT for a 16-byte key.
func keyFile(template string) []byte {
	return []byte(strings.NewReplacer("KEY1", key1B64, "KEY2", key2B64, "SHORT", shortB64).Replace(template))
}

func TestParseReadsTheDocumentedFormat(t *testing.T) {
	kr, err := Parse(keyFile(`{"version":1,"keys":[
		{"id":"2026-05-02-9c41","created":"2026-05-02T08:30:00Z","key":"KEY1"},
		{"id":"2026-11-24-a1b2","key":"KEY2"}]}`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got := strings.Join(kr.IDs(), ","); got != "2026-05-02-9c41,2026-11-24-a1b2" {
		t.Errorf("IDs = %s", got)
	}
	if kr.PrimaryID() != "2026-11-24-a1b2" {
		t.Errorf("PrimaryID = %q, want the last key", kr.PrimaryID())
	}
	// The parsed keys are the ones in the file: envelopes made with keys
	// built from the same material decrypt.
	envelope := encrypt(t, newKeyring(t, newKey("2026-05-02-9c41", 1)), "body", "msg-1")
	if got, err := kr.Decrypt(envelope, []byte("msg-1")); err != nil || string(got) != "body" {
		t.Errorf("Decrypt = %q, %v", got, err)
	}
}

func TestMarshalRoundTrips(t *testing.T) {
	k1, err := Generate("")
	if err != nil {
		t.Fatal(err)
	}
	kr := newKeyring(t, k1, newKey("no-created-time", 2))
	envelope := encrypt(t, kr, "body", "msg-1")
	data, err := kr.Marshal()
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	back, err := Parse(data)
	if err != nil {
		t.Fatalf("Parse(Marshal()): %v\n%s", err, data)
	}
	if got, want := strings.Join(back.IDs(), ","), strings.Join(kr.IDs(), ","); got != want {
		t.Errorf("IDs = %s, want %s", got, want)
	}
	if got, err := back.Decrypt(envelope, []byte("msg-1")); err != nil || string(got) != "body" {
		t.Errorf("Decrypt after round trip = %q, %v", got, err)
	}
	if strings.Contains(string(data), `"created": ""`) {
		t.Errorf("Marshal wrote an empty created time:\n%s", data)
	}
}

func TestParseRejectsMalformedFiles(t *testing.T) {
	tests := []struct {
		name string
		file string
		want string
	}{
		{"empty file", ``, "keyring: file is empty"},
		{"only whitespace", " \n\t", "file is empty"},
		{"bad JSON", "{\"version\":1,\n \"keys\":[}", "keyring: line 2, column 10: invalid JSON"},
		{"syntax error inside the key", `{"version":1,"keys":[{"id":"a","key":"KEY1\q"}]}`, "line 1, column"},
		{"truncated JSON", `{"version":1,"keys":[{"id":"a","key":"KEY1"`, "ends in the middle"},
		{"not an object", `[]`, `the file must be an object`},
		{"version as string", `{"version":"1","keys":[]}`, `"version" must be an integer`},
		{"fractional version", `{"version":1.5,"keys":[]}`, `"version" must be an integer`},
		{"keys as object", `{"version":1,"keys":{}}`, `"keys" must be an array`},
		{"key as number", `{"version":1,"keys":[{"id":"a","key":12}]}`, `"keys.key" must be a string`},
		{"unknown field", `{"version":1,"keys":[{"id":"a","key":"KEY1","secret":"x"}]}`, `unknown field "secret"`},
		{"key material as a field name", `{"version":1,"keys":[{"id":"a","KEY1":"x"}]}`, "unknown field with a name longer than 24 characters"},
		{"trailing data", `{"version":1,"keys":[{"id":"a","key":"KEY1"}]} {}`, "line 1, column 88: unexpected data after the JSON object"},
		{"missing version", `{"keys":[{"id":"a","key":"KEY1"}]}`, "version is missing or 0; expected 1"},
		{"unknown version", `{"version":2,"keys":[{"id":"a","key":"KEY1"}]}`, "unsupported version 2; expected 1"},
		{"missing keys", `{"version":1}`, "no keys"},
		{"empty keys", `{"version":1,"keys":[]}`, "no keys"},
		{"null keys", `{"version":1,"keys":null}`, "no keys"},
		{"missing id", `{"version":1,"keys":[{"key":"KEY1"}]}`, "key 1: id is empty"},
		{"bad id characters", `{"version":1,"keys":[{"id":"a","key":"KEY1"},{"id":"bad id","key":"KEY2"}]}`, "key 2: id has a character other than A-Z, a-z, 0-9, '.', '_', '-' at position 4"},
		{"id too long", `{"version":1,"keys":[{"id":"` + strings.Repeat("a", 65) + `","key":"KEY1"}]}`, "key 1: id is 65 characters long; at most 64"},
		{"key material in the id field", `{"version":1,"keys":[{"id":"KEY1","key":"a"}]}`, "key 1: id has a character"},
		{"duplicate ids", `{"version":1,"keys":[{"id":"a","key":"KEY1"},{"id":"b","key":"KEY2"},{"id":"a","key":"KEY2"}]}`, `key 3 (id "a"): duplicate id, already used by key 1`},
		{"missing key", `{"version":1,"keys":[{"id":"a"}]}`, `key 1 (id "a"): key is missing`},
		{"wrong key length", `{"version":1,"keys":[{"id":"a","key":"KEY1"},{"id":"x","key":"SHORT"}]}`, `keyring: key 2 (id "x"): key must be 32 bytes, got 16`},
		{"bad base64", `{"version":1,"keys":[{"id":"a","key":"KEY1!"}]}`, `key 1 (id "a"): key is not valid standard base64 (bad input at character 45)`},
		{"URL-safe base64", `{"version":1,"keys":[{"id":"a","key":"` + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xff}, KeySize)) + `"}]}`, "not valid standard base64"},
		{"bad created time", `{"version":1,"keys":[{"id":"a","created":"KEY2","key":"KEY1"}]}`, `key 1 (id "a"): created must be an RFC 3339 time`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(keyFile(tt.file))
			if err == nil {
				t.Fatal("Parse succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q\ndoes not contain %q", err, tt.want)
			}
			assertNoKeyMaterial(t, err.Error())
		})
	}
}

// assertNoKeyMaterial fails if s shows any test key in a form fmt or
// encoding/json could produce, or even a long piece of its base64.
func assertNoKeyMaterial(t *testing.T, s string) {
	t.Helper()
	for _, fill := range []byte{1, 2} {
		m := newKey("", fill).material
		for _, leak := range []string{
			base64.StdEncoding.EncodeToString(m[:])[:8],
			hex.EncodeToString(m[:])[:8],
			strings.ToUpper(hex.EncodeToString(m[:])[:8]),
			fmt.Sprint(m[:4])[1:],
			fmt.Sprintf("%#v", m[:4])[8:],
			string(m[:8]),
		} {
			if strings.Contains(s, leak) {
				t.Fatalf("%q shows key material (%q)", s, leak)
			}
		}
	}
}

func TestKeyFormattingRedactsMaterial(t *testing.T) {
	k := newKey("2026-11-24-a1b2", 1)
	kr := newKeyring(t, k, newKey("k2", 2))
	var slogText, slogJSON strings.Builder
	slog.New(slog.NewTextHandler(&slogText, nil)).Info("key", "key", k, "ptr", &k)
	slog.New(slog.NewJSONHandler(&slogJSON, nil)).Info("key", "key", k, "ptr", &k)
	jsonBytes, err := json.Marshal(struct{ K Key }{k})
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"String":      k.String(),
		"GoString":    k.GoString(),
		"json":        string(jsonBytes),
		"slog text":   slogText.String(),
		"slog json":   slogJSON.String(),
		"keyring %+v": fmt.Sprintf("%+v", kr),
		"keyring %#v": fmt.Sprintf("%#v", kr),
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%o", "%b", "%c", "%U", "%T %[1]v"} {
		outputs["value "+verb] = fmt.Sprintf(verb, k)
		outputs["pointer "+verb] = fmt.Sprintf(verb, &k)
		outputs["slice "+verb] = fmt.Sprintf(verb, []Key{k})
	}
	for name, out := range outputs {
		t.Run(name, func(t *testing.T) {
			assertNoKeyMaterial(t, out)
		})
	}
	if !strings.Contains(outputs["value %v"], "2026-11-24-a1b2") {
		t.Errorf("%%v output %q does not show the key id", outputs["value %v"])
	}
}
