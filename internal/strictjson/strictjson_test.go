package strictjson

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
)

func TestIsJSONContentType(t *testing.T) {
	for header, want := range map[string]bool{
		"application/json":                    true,
		"Application/JSON":                    true,
		"application/json; charset=utf-8":     true,
		"application/json; charset=\"UTF-8\"": true,
		"":                                    false,
		"text/plain":                          false,
		"application/x-www-form-urlencoded":   false,
		"application/json; charset=latin1":    false,
		"application/json; boundary=x":        false,
		"application/jsonx":                   false,
		"application/problem+json":            false,
		"application/json;":                   true,
		"application/json; charset":           false,
	} {
		if got := IsJSONContentType(header); got != want {
			t.Errorf("IsJSONContentType(%q) = %v, want %v", header, got, want)
		}
	}
}

type inner struct {
	Name string `json:"name"`
}

type Embedded struct {
	Shared string `json:"shared"`
}

type request struct {
	Embedded
	Inner    inner             `json:"inner"`
	Optional *inner            `json:"optional"`
	List     []inner           `json:"list"`
	Labels   map[string]string `json:"labels"`
	Any      any               `json:"any"`
	Raw      json.RawMessage   `json:"raw"`
	Count    int               `json:"count,omitempty"`
	Plain    string
	Skipped  string `json:"-"`
	//lint:ignore U1000 an unexported field, which decoding must ignore like encoding/json does
	hidden string
}

// TestDecodeChecksKeysAtEveryStructLevel: nested structs, pointers to them
// and slices of them are held to their field names; maps, interfaces and
// raw JSON take any keys.
func TestDecodeChecksKeysAtEveryStructLevel(t *testing.T) {
	var r request
	err := Decode([]byte(`{"shared":"s","inner":{"name":"a"},"optional":{"name":"b"},"list":[{"name":"c"}],
		"labels":{"Any Key":"v"},"any":{"X":{"Y":1}},"raw":{"Free":[1]},"count":3,"Plain":"p"}`), &r)
	if err != nil {
		t.Fatal(err)
	}
	if r.Shared != "s" || r.Inner.Name != "a" || r.Optional.Name != "b" || r.List[0].Name != "c" || r.Labels["Any Key"] != "v" ||
		string(r.Raw) != `{"Free":[1]}` || r.Count != 3 || r.Plain != "p" {
		t.Fatalf("decoded %+v", r)
	}
	refused := map[string]string{
		`{"inner":{"Name":"a"}}`:        "inner.Name",
		`{"optional":{"nom":"b"}}`:      "optional.nom",
		`{"list":[{"name":"c","x":1}]}`: "list[0].x",
		`{"Skipped":"x"}`:               "Skipped",
		`{"hidden":"x"}`:                "hidden",
		`{"plain":"x"}`:                 "plain",
		`{"Embedded":{}}`:               "Embedded",
	}
	for body, field := range refused {
		err := Decode([]byte(body), &request{})
		if e, ok := apperr.As(err); !ok || e.Code != "unknown_field" || !strings.HasPrefix(e.Message, field+" ") {
			t.Errorf("Decode(%s) = %v, want unknown_field naming %s", body, err, field)
		}
	}
}

func TestDecodeNamesTheFieldOfAWrongType(t *testing.T) {
	cases := map[string]string{
		`{"count":"3"}`:         "count must be a number",
		`{"inner":[]}`:          "inner must be an object",
		`{"list":{}}`:           "list must be an array",
		`{"labels":{"a":true}}`: "labels must be a string",
	}
	for body, want := range cases {
		err := Decode([]byte(body), &request{})
		if e, ok := apperr.As(err); !ok || e.Code != "invalid_field_type" || !strings.HasPrefix(e.Message, want) {
			t.Errorf("Decode(%s) = %v, want %q", body, err, want)
		}
	}
	var flag struct {
		On bool `json:"on"`
	}
	if e, ok := apperr.As(Decode([]byte(`{"on":1}`), &flag)); !ok || !strings.HasPrefix(e.Message, "on must be a boolean") {
		t.Errorf("bool field = %v", e)
	}
}

func TestDecodeRefusesMalformedJSON(t *testing.T) {
	for _, body := range []string{``, ` `, `[]`, `"x"`, `{`, `{"a"`, `{"a":}`, `{"a":1,}`, `{} {}`, `{}x`, `{"list":[1,]}`, `{"any":{"a":1}`} {
		err := Decode([]byte(body), &request{})
		if e, ok := apperr.As(err); !ok || e.Kind != apperr.Invalid || e.Code != "invalid_json" {
			t.Errorf("Decode(%q) = %v, want invalid_json", body, err)
		}
	}
}

func TestLoneSurrogate(t *testing.T) {
	cases := map[string]int{
		`"\ud83d\ude00"`:    -1,
		`"\\ud800"`:         -1,
		`"\\\ud800"`:        3,
		`"a\u00e9\ud800"`:   8,
		`"\udfff"`:          1,
		`"\ud800\ud800"`:    1,
		`"\ud800\ue000"`:    1,
		`"\ud800"`:          1,
		`"\ud800\u"`:        1,
		`"\uzzzz"`:          -1,
		`"\u12"`:            -1,
		`"\ud7ff\ue000"`:    -1,
		`"x\"\ud800\udc00"`: -1,
	}
	for in, want := range cases {
		if got := loneSurrogate([]byte(in)); got != want {
			t.Errorf("loneSurrogate(%s) = %d, want %d", in, got, want)
		}
	}
}

func TestDecodeReportsTheOffsetOfBadUTF8(t *testing.T) {
	err := Decode([]byte("{\"plain\":\"ab\xc3(\"}"), &request{})
	if e, ok := apperr.As(err); !ok || e.Code != "invalid_utf8" || !strings.Contains(e.Message, "offset 12") {
		t.Fatalf("= %v, want invalid_utf8 at offset 12", err)
	}
}
