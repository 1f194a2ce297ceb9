package strictjson

import (
	"strings"
	"testing"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
)

// TestDecodeAllowsOnlyTabLineFeedAndCarriageReturn: the three whitespace
// controls pass through unchanged, every other control character is
// refused with the field named, in values and in keys.
func TestDecodeAllowsOnlyTabLineFeedAndCarriageReturn(t *testing.T) {
	var r request
	if err := Decode([]byte(`{"Plain":"a\tb\nc\rd","labels":{"k\t":"\r\n"}}`), &r); err != nil {
		t.Fatalf("tab, LF and CR refused: %v", err)
	}
	if r.Plain != "a\tb\nc\rd" || r.Labels["k\t"] != "\r\n" {
		t.Fatalf("decoded %q %q", r.Plain, r.Labels)
	}
	refused := map[string]string{
		`{"Plain":"a\u0000"}`:          "Plain",
		`{"Plain":"\u0001"}`:           "Plain",
		`{"Plain":"\u000b"}`:           "Plain",
		`{"Plain":"\u007f"}`:           "Plain",
		`{"Plain":"\u0085"}`:           "Plain",
		`{"labels":{"a\u001fb":"x"}}`:  "labels.a\x1fb",
		`{"list":[{"name":"\u0008"}]}`: "list[0].name",
	}
	for body, field := range refused {
		err := Decode([]byte(body), &request{})
		if e, ok := apperr.As(err); !ok || e.Code != "control_character" || !strings.HasPrefix(e.Message, field+" ") {
			t.Errorf("Decode(%s) = %v, want control_character naming %q", body, err, field)
		}
	}
}

// TestDecodeNamesTheArrayIndex: an error inside the n-th element of an
// array names that element, so a client can find it in a long list.
func TestDecodeNamesTheArrayIndex(t *testing.T) {
	err := Decode([]byte(`{"list":[{"name":"a"},{"name":"b"},{"name":"c","nom":1}]}`), &request{})
	if e, ok := apperr.As(err); !ok || e.Code != "unknown_field" || !strings.HasPrefix(e.Message, "list[2].nom ") {
		t.Fatalf("= %v, want unknown_field naming list[2].nom", err)
	}
}

// TestDecodeChecksStructsInsideMaps: a map's keys are free, but the
// struct values it holds are held to their field names.
func TestDecodeChecksStructsInsideMaps(t *testing.T) {
	var byName struct {
		Items map[string]inner `json:"items"`
	}
	if err := Decode([]byte(`{"items":{"Any Key":{"name":"a"}}}`), &byName); err != nil || byName.Items["Any Key"].Name != "a" {
		t.Fatalf("= %v, %+v", err, byName)
	}
	err := Decode([]byte(`{"items":{"k":{"nom":"a"}}}`), &byName)
	if e, ok := apperr.As(err); !ok || e.Code != "unknown_field" || !strings.HasPrefix(e.Message, "items.k.nom ") {
		t.Fatalf("= %v, want unknown_field naming items.k.nom", err)
	}
}

// TestLoneSurrogateAtTheEdges: the highest pair (U+10FFFF) is whole, and
// a pair that ends the input exactly is read in full.
func TestLoneSurrogateAtTheEdges(t *testing.T) {
	cases := map[string]int{
		`"\udbff\udfff"`: -1,
		`\ud83d\ude00`:   -1,
		`\udbff\ue000`:   0,
	}
	for in, want := range cases {
		if got := loneSurrogate([]byte(in)); got != want {
			t.Errorf("loneSurrogate(%s) = %d, want %d", in, got, want)
		}
	}
	var r request
	if err := Decode([]byte(`{"Plain":"\udbff\udfff"}`), &r); err != nil || r.Plain != "\U0010FFFF" {
		t.Fatalf("U+10FFFF as a pair: %v, %q", err, r.Plain)
	}
}
