package devicecrypto

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// TestParseEnvelopeAllowsALineBreakPer76Characters: a field of the largest
// size, base64 wrapped at 76 characters with CRLF after every line (the
// last included), is accepted; one more character is refused for its
// length before it is decoded.
func TestParseEnvelopeAllowsALineBreakPer76Characters(t *testing.T) {
	const max = 4096
	enc := base64.StdEncoding.EncodeToString(make([]byte, max))
	var wrapped strings.Builder
	for len(enc) > 0 {
		n := min(76, len(enc))
		wrapped.WriteString(enc[:n] + "\r\n")
		enc = enc[n:]
	}
	fields := map[string]any{"encryptedKey": b64(256), "iv": b64(16), "ciphertext": wrapped.String(), "minute": 29381234}
	env, err := ParseEnvelope(envelopeJSON(fields), max)
	if err != nil || len(env.Ciphertext) != max {
		t.Fatalf("%d bytes wrapped in %d characters: %v", max, wrapped.Len(), err)
	}
	fields["ciphertext"] = wrapped.String() + "\n"
	if _, err := ParseEnvelope(envelopeJSON(fields), max); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("%d characters: %v, want it refused as longer than %d bytes", wrapped.Len()+1, err, max)
	}
}

// TestHPKEInfoHoldsBothIDsWhateverTheirLength: the info is the label, the
// user id and the device id, each after a zero byte, for ids of any length.
func TestHPKEInfoHoldsBothIDsWhateverTheirLength(t *testing.T) {
	long := strings.Repeat("x", 100)
	for _, ids := range [][2]string{{long, "d"}, {"u", long}, {"", ""}} {
		want := []byte("msgbroker device v1\x00" + ids[0] + "\x00" + ids[1])
		if got := HPKEInfo(ids[0], ids[1]); !bytes.Equal(got, want) {
			t.Errorf("HPKEInfo(%d-byte user, %d-byte device) = %q, want %q", len(ids[0]), len(ids[1]), got, want)
		}
	}
}
