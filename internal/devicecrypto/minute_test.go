package devicecrypto

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestEnvelopeMinuteIsANumberOrAString: the minute a device binds its
// message to is any JSON number (kept as written, so it authenticates
// byte for byte) or a non-empty string; any other JSON value is refused.
func TestEnvelopeMinuteIsANumberOrAString(t *testing.T) {
	enc, _ := json.Marshal(make([]byte, EncSize))
	for raw, want := range map[string]string{
		`0`:                  "0",
		`9`:                  "9",
		`-1`:                 "-1",
		`1e3`:                "1e3",
		`"2026-12-02 10:34"`: "2026-12-02 10:34",
		`"\u00e9"`:           "é",
		`"` + strings.Repeat("a", MaxMinuteSize-2) + `"`: strings.Repeat("a", MaxMinuteSize-2),
	} {
		env, err := ParseHPKEEnvelope([]byte(`{"enc":`+string(enc)+`,"ciphertext":"AA==","minute":`+raw+`}`), 0)
		if err != nil || env.Minute != want {
			t.Errorf("minute %s: %+v, %v; want %q", raw, env, err, want)
		}
	}
	for _, raw := range []string{`true`, `false`, `[]`, `""`, `"` + strings.Repeat("a", MaxMinuteSize-1) + `"`} {
		_, err := ParseHPKEEnvelope([]byte(`{"enc":`+string(enc)+`,"ciphertext":"AA==","minute":`+raw+`}`), 0)
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("minute %s: %v, want ErrMalformed", raw, err)
		}
	}
}
