package devicecrypto

import (
	"encoding/json"
	"testing"
)

func TestHPKEOpensWhatWasSealedForTheSameDevice(t *testing.T) {
	priv, err := NewHPKEKey()
	if err != nil {
		t.Fatal(err)
	}
	info := HPKEInfo("u1", "d1")
	enc, ct, err := SealHPKE(priv.PublicKey(), info, []byte(`"12"`), []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := json.Marshal(map[string]any{"enc": enc, "ciphertext": ct, "minute": "12"})
	env, err := ParseHPKEEnvelope(msg, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := OpenHPKE(priv, info, env); err != nil || string(got) != "hello" || env.Minute != "12" {
		t.Fatalf("got %q, %v", got, err)
	}
	if _, err := OpenHPKE(priv, HPKEInfo("u1", "d2"), env); err != ErrDecrypt {
		t.Errorf("another device's info: %v, want ErrDecrypt", err)
	}
	moved, _ := json.Marshal(map[string]any{"enc": enc, "ciphertext": ct, "minute": "13"})
	env2, err := ParseHPKEEnvelope(moved, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenHPKE(priv, info, env2); err != ErrDecrypt {
		t.Errorf("another minute: %v, want ErrDecrypt", err)
	}
	env.Ciphertext[0] ^= 1
	if _, err := OpenHPKE(priv, info, env); err != ErrDecrypt {
		t.Errorf("tampered ciphertext: %v, want ErrDecrypt", err)
	}
}

func TestParseHPKEEnvelopeLimits(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  map[string]any
		ok   bool
	}{
		{"valid", map[string]any{"enc": make([]byte, 32), "ciphertext": make([]byte, 17), "minute": 1}, true},
		{"enc of 31 bytes", map[string]any{"enc": make([]byte, 31), "ciphertext": make([]byte, 17), "minute": 1}, false},
		{"enc of 33 bytes", map[string]any{"enc": make([]byte, 33), "ciphertext": make([]byte, 17), "minute": 1}, false},
		{"ciphertext at the limit", map[string]any{"enc": make([]byte, 32), "ciphertext": make([]byte, 100), "minute": 1}, true},
		{"ciphertext over the limit", map[string]any{"enc": make([]byte, 32), "ciphertext": make([]byte, 101), "minute": 1}, false},
		{"no minute", map[string]any{"enc": make([]byte, 32), "ciphertext": make([]byte, 17)}, false},
	} {
		msg, _ := json.Marshal(tc.msg)
		_, err := ParseHPKEEnvelope(msg, 100)
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}
