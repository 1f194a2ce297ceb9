package devicecrypto

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"hash"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

var (
	keyOnce sync.Once
	testKey *rsa.PrivateKey
)

// key returns one 2048-bit key shared by the tests (generating one per
// test would dominate their time).
func key(t testing.TB) *rsa.PrivateKey {
	keyOnce.Do(func() {
		var err error
		if testKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return testKey
}

func mustPadding(t testing.TB, scheme, mgf string, keySize int) Padding {
	t.Helper()
	p, err := ParsePadding(scheme, mgf, keySize)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func seal(t testing.TB, p Padding, keySize int, plaintext string) *Envelope {
	t.Helper()
	msg, err := p.Seal(&key(t).PublicKey, keySize, []byte(plaintext), 29381234)
	if err != nil {
		t.Fatal(err)
	}
	env, err := ParseEnvelope(msg, 0)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func TestOpenDecryptsEveryPaddingAndKeySize(t *testing.T) {
	for _, tc := range []struct {
		scheme, mgf string
		keySize     int
	}{
		{OAEPSHA256, "", 16}, {OAEPSHA256, "", 24}, {OAEPSHA256, "", 32},
		{OAEPSHA1, "", 32}, {OAEPSHA256, "sha1", 32}, {OAEPSHA1, "sha256", 16},
		{PKCS1v15, "", 16}, {PKCS1v15, "", 24}, {PKCS1v15, "", 32},
	} {
		p := mustPadding(t, tc.scheme, tc.mgf, map[bool]int{true: tc.keySize}[tc.scheme == PKCS1v15])
		for _, plaintext := range []string{"", "x", strings.Repeat("a", 15), strings.Repeat("b", 16), "grüße " + strings.Repeat("c", 40)} {
			got, err := p.Open(key(t), seal(t, p, tc.keySize, plaintext))
			if err != nil || string(got) != plaintext {
				t.Errorf("%s/%s/%d %q: got %q, %v", tc.scheme, tc.mgf, tc.keySize, plaintext, got, err)
			}
		}
	}
}

func TestOpenGivesOneErrorForEveryFailure(t *testing.T) {
	oaep := mustPadding(t, OAEPSHA256, "", 0)
	pkcs := mustPadding(t, PKCS1v15, "", 32)
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	text := "a message of three blocks, long enough to span them"
	for _, tc := range []struct {
		name string
		open Padding
		priv *rsa.PrivateKey
		env  func() *Envelope
	}{
		{"another session's key", oaep, other, func() *Envelope { return seal(t, oaep, 32, text) }},
		{"tampered wrapped key", oaep, key(t), func() *Envelope {
			e := seal(t, oaep, 32, text)
			e.EncryptedKey[10] ^= 1
			return e
		}},
		{"tampered wrapped key, pkcs1v15", pkcs, key(t), func() *Envelope {
			e := seal(t, pkcs, 32, text)
			e.EncryptedKey[10] ^= 1
			return e
		}},
		{"CBC padding broken through the ciphertext", oaep, key(t), func() *Envelope {
			e := seal(t, oaep, 32, text)
			e.Ciphertext[len(e.Ciphertext)-17] ^= 0xff
			return e
		}},
		{"CBC padding broken through the IV", oaep, key(t), func() *Envelope {
			e := seal(t, oaep, 32, "one block")
			e.IV[15] ^= 0xff
			return e
		}},
		{"wrapped key of the wrong length", oaep, key(t), func() *Envelope {
			e := seal(t, oaep, 32, text)
			e.EncryptedKey = e.EncryptedKey[1:]
			return e
		}},
		{"AES key of 20 bytes", oaep, key(t), func() *Envelope {
			e := seal(t, oaep, 32, text)
			e.EncryptedKey, _ = rsa.EncryptOAEP(sha256New(), rand.Reader, &key(t).PublicKey, make([]byte, 20), nil)
			return e
		}},
		{"plaintext not UTF-8", oaep, key(t), func() *Envelope { return seal(t, oaep, 32, "\xff\xfe bytes") }},
		{"sent with OAEP-SHA1, opened with OAEP-SHA256", oaep, key(t), func() *Envelope {
			return seal(t, mustPadding(t, OAEPSHA1, "", 0), 32, text)
		}},
		{"sent with OAEP, opened with PKCS#1 v1.5", pkcs, key(t), func() *Envelope { return seal(t, oaep, 32, text) }},
		{"sent with PKCS#1 v1.5, opened with OAEP", oaep, key(t), func() *Envelope { return seal(t, pkcs, 32, text) }},
		{"sent with MGF1-SHA1, opened with MGF1-SHA256", oaep, key(t), func() *Envelope {
			return seal(t, mustPadding(t, OAEPSHA256, "sha1", 0), 32, text)
		}},
	} {
		got, err := tc.open.Open(tc.priv, tc.env())
		if err != ErrDecrypt || got != nil {
			t.Errorf("%s: got %q, %v; want nil, ErrDecrypt", tc.name, got, err)
		}
	}
}

// step is an envelope that Open refuses at one of its steps, or none.
type step struct {
	name string
	env  *Envelope
}

// openSteps returns, for p, an envelope that Open accepts followed by one
// failing at each step after the public size checks: the RSA padding, the
// AES key length, the CBC padding and the plaintext check.
func openSteps(t testing.TB, p Padding) []step {
	t.Helper()
	text := strings.Repeat("z", 200)
	badRSA := seal(t, p, 32, text)
	badRSA.EncryptedKey[0] ^= 1
	badLength := seal(t, p, 32, text)
	badLength.EncryptedKey = wrapKey(t, p, make([]byte, 20))
	badCBC := seal(t, p, 32, text)
	badCBC.Ciphertext[len(badCBC.Ciphertext)-17] ^= 0xff
	return []step{
		{"success", seal(t, p, 32, text)},
		{"RSA padding", badRSA},
		{"AES key length", badLength},
		{"CBC padding", badCBC},
		{"plaintext not UTF-8", seal(t, p, 32, "\xff\xfe"+text)},
	}
}

// wrapKey wraps aesKey with the test key as a device using p would.
func wrapKey(t testing.TB, p Padding, aesKey []byte) []byte {
	t.Helper()
	var wrapped []byte
	var err error
	if p.Scheme == PKCS1v15 {
		//lint:ignore SA1019 the device side of the pkcs1v15 mode under test
		wrapped, err = rsa.EncryptPKCS1v15(rand.Reader, &key(t).PublicKey, aesKey)
	} else {
		wrapped, err = rsa.EncryptOAEPWithOptions(rand.Reader, &key(t).PublicKey, aesKey, &rsa.OAEPOptions{Hash: p.hash(), MGFHash: p.MGFHash})
	}
	if err != nil {
		t.Fatal(err)
	}
	return wrapped
}

// TestOpenDoesTheSameWorkWhicheverStepFails checks that Open runs the RSA
// operation, the AES-CBC decryption and the checks after it whichever step
// fails, so that no failure is quicker than another. It counts allocations
// rather than time: the count is a deterministic trace of the steps run
// (the RSA operation, the AES cipher, the CBC decrypter and the plaintext
// buffer all allocate), where a clock on a shared machine is noise. Each
// envelope must also get the one answer, ErrDecrypt.
func TestOpenDoesTheSameWorkWhicheverStepFails(t *testing.T) {
	for _, p := range []Padding{mustPadding(t, OAEPSHA256, "", 0), mustPadding(t, PKCS1v15, "", 32)} {
		steps := openSteps(t, p)
		var want float64
		for i, s := range steps {
			got, err := p.Open(key(t), s.env)
			if fails := i > 0; fails != (err != nil) || fails && (err != ErrDecrypt || got != nil) {
				t.Fatalf("%s, %s: got %q, %v", p.Scheme, s.name, got, err)
			}
			allocs := testing.AllocsPerRun(10, func() { _, _ = p.Open(key(t), s.env) })
			if i == 0 {
				want = allocs
			} else if allocs != want {
				t.Errorf("%s: a failure at the %s step allocates %v times, a success %v: a step was skipped or added",
					p.Scheme, s.name, allocs, want)
			}
		}
	}
}

// TestUnwrapFailureStillGivesAnAESKey checks that a failed RSA step hands
// Open a key it can carry on with instead of stopping, so the AES step runs
// as on a success. OAEP reports the failure (ok 0) for Open to act on at the
// end; PKCS #1 v1.5 hides it even from Open and gives a random key of the
// configured size, which the CBC and plaintext checks then refuse.
func TestUnwrapFailureStillGivesAnAESKey(t *testing.T) {
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	sent := bytes.Repeat([]byte{7}, 24)
	for _, p := range []Padding{mustPadding(t, OAEPSHA256, "", 0), mustPadding(t, PKCS1v15, "", 24)} {
		tampered := wrapKey(t, p, sent)
		tampered[0] ^= 1
		for name, tc := range map[string]struct {
			priv    *rsa.PrivateKey
			wrapped []byte
		}{
			"tampered":              {key(t), tampered},
			"another session's key": {other, wrapKey(t, p, sent)},
		} {
			k, ok := p.unwrap(tc.priv, tc.wrapped)
			usable := aesKeySize(len(k)) && !bytes.Equal(k, sent)
			if p.Scheme == PKCS1v15 {
				usable = usable && len(k) == p.KeySize
			} else {
				usable = usable && ok == 0
			}
			if !usable {
				t.Errorf("%s, %s: got a key of %d bytes (%x), ok %d", p.Scheme, name, len(k), k, ok)
			}
		}
		if k, ok := p.unwrap(key(t), wrapKey(t, p, sent)); ok != 1 || !bytes.Equal(k, sent) {
			t.Errorf("%s: the untampered key unwraps to %x, ok %d", p.Scheme, k, ok)
		}
	}
}

// BenchmarkOpenFailureSteps reports the time of Open for a success and a
// failure at each step, per padding. It asserts nothing about the times:
// compare them by hand (go test -run '^$' -bench OpenFailureSteps).
func BenchmarkOpenFailureSteps(b *testing.B) {
	for _, p := range []Padding{mustPadding(b, OAEPSHA256, "", 0), mustPadding(b, PKCS1v15, "", 32)} {
		for _, s := range openSteps(b, p) {
			b.Run(p.Scheme+"/"+strings.ReplaceAll(s.name, " ", "_"), func(b *testing.B) {
				for b.Loop() {
					_, _ = p.Open(key(b), s.env)
				}
			})
		}
	}
}

func TestUnpadChecksEveryPaddingByte(t *testing.T) {
	block := func(tail ...byte) []byte {
		b := bytes.Repeat([]byte{'x'}, 32-len(tail))
		return append(b, tail...)
	}
	full := bytes.Repeat([]byte{16}, 16)
	for _, tc := range []struct {
		name string
		buf  []byte
		n    int
		good int
	}{
		{"one byte", block(1), 31, 1},
		{"three bytes", block(3, 3, 3), 29, 1},
		{"a whole block", append(bytes.Repeat([]byte{'y'}, 16), full...), 16, 1},
		{"zero", block(0), 32, 0},
		{"seventeen", block(17), 32, 0},
		{"one byte of three wrong", block(3, 2, 3), 32, 0},
		{"first of sixteen wrong", append(bytes.Repeat([]byte{'y'}, 16), append([]byte{15}, full[1:]...)...), 32, 0},
	} {
		n, good := unpad(tc.buf)
		if n != tc.n || good != tc.good {
			t.Errorf("%s: got %d, %d; want %d, %d", tc.name, n, good, tc.n, tc.good)
		}
	}
}

func b64(n int) string { return base64.StdEncoding.EncodeToString(make([]byte, n)) }

func envelopeJSON(fields map[string]any) []byte {
	b, _ := json.Marshal(fields)
	return b
}

func TestParseEnvelopeLimits(t *testing.T) {
	valid := func(edit func(map[string]any)) []byte {
		f := map[string]any{"encryptedKey": b64(256), "iv": b64(16), "ciphertext": b64(32), "minute": 29381234}
		edit(f)
		return envelopeJSON(f)
	}
	const max = 4096
	for _, tc := range []struct {
		name string
		data []byte
		ok   bool
	}{
		{"valid", valid(func(map[string]any) {}), true},
		{"minute as string", valid(func(f map[string]any) { f["minute"] = "2026-12-02 10:34" }), true},
		{"extra field ignored", valid(func(f map[string]any) { f["extra"] = 1 }), true},
		{"wrapped key at 1024 bytes", valid(func(f map[string]any) { f["encryptedKey"] = b64(1024) }), true},
		{"wrapped key at 1025 bytes", valid(func(f map[string]any) { f["encryptedKey"] = b64(1025) }), false},
		{"iv of 15 bytes", valid(func(f map[string]any) { f["iv"] = b64(15) }), false},
		{"iv of 17 bytes", valid(func(f map[string]any) { f["iv"] = b64(17) }), false},
		{"ciphertext at the limit", valid(func(f map[string]any) { f["ciphertext"] = b64(max) }), true},
		{"ciphertext one block over", valid(func(f map[string]any) { f["ciphertext"] = b64(max + 16) }), false},
		{"ciphertext not block-aligned", valid(func(f map[string]any) { f["ciphertext"] = b64(33) }), false},
		{"ciphertext empty", valid(func(f map[string]any) { f["ciphertext"] = "" }), false},
		{"base64 wrapped at 76 characters", valid(func(f map[string]any) {
			s := b64(256)
			f["encryptedKey"] = s[:76] + "\n" + s[76:152] + "\r\n" + s[152:]
		}), true},
		{"URL-safe base64", valid(func(f map[string]any) {
			f["ciphertext"] = strings.Repeat("_-", 32)
		}), false},
		{"missing iv", valid(func(f map[string]any) { delete(f, "iv") }), false},
		{"missing minute", valid(func(f map[string]any) { delete(f, "minute") }), false},
		{"minute null", valid(func(f map[string]any) { f["minute"] = nil }), false},
		{"minute an object", valid(func(f map[string]any) { f["minute"] = map[string]any{} }), false},
		{"minute too long", valid(func(f map[string]any) { f["minute"] = strings.Repeat("9", 65) }), false},
		{"iv a number", valid(func(f map[string]any) { f["iv"] = 16 }), false},
		{"not an object", []byte(`[1,2]`), false},
		{"two objects", append(valid(func(map[string]any) {}), `{}`...), false},
		{"not JSON", []byte(`encryptedKey=1`), false},
	} {
		env, err := ParseEnvelope(tc.data, max)
		if tc.ok && err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		if !tc.ok && (err == nil || !errors.Is(err, ErrMalformed) || env != nil) {
			t.Errorf("%s: got %v, %v; want ErrMalformed", tc.name, env, err)
		}
	}
}

func TestParsePaddingRefusesUnknownAndMixedSettings(t *testing.T) {
	for _, tc := range []struct {
		scheme, mgf string
		keySize     int
	}{
		{"oaep", "", 0}, {"OAEP-SHA256", "", 0}, {OAEPSHA256, "md5", 0}, {PKCS1v15, "sha1", 0},
		{PKCS1v15, "", 20}, {OAEPSHA256, "", 32},
	} {
		if _, err := ParsePadding(tc.scheme, tc.mgf, tc.keySize); err == nil {
			t.Errorf("ParsePadding(%q, %q, %d) accepted", tc.scheme, tc.mgf, tc.keySize)
		}
	}
	if p, err := ParsePadding("", "", 0); err != nil || p.Scheme != OAEPSHA256 {
		t.Errorf("default padding: %+v, %v", p, err)
	}
}

// TestOpenDecryptsWhatPythonCryptographyEncrypts encrypts with
// python3-cryptography, the library the original device server used.
func TestOpenDecryptsWhatPythonCryptographyEncrypts(t *testing.T) {
	if err := exec.Command("python3", "-c", "import cryptography").Run(); err != nil {
		if os.Getenv("MSGBROKER_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatalf("python3-cryptography is required: %v", err)
		}
		t.Skip("python3-cryptography is not installed (apt-get install python3-cryptography)")
	}
	der, err := x509.MarshalPKIXPublicKey(&key(t).PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pub := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	cases := []struct {
		mode     string
		padding  Padding
		keyBytes string
	}{
		{"oaep-sha256", mustPadding(t, OAEPSHA256, "", 0), "32"},
		{"oaep-sha256", mustPadding(t, OAEPSHA256, "", 0), "16"},
		{"oaep-sha1", mustPadding(t, OAEPSHA1, "", 0), "24"},
		{"oaep-sha256-mgf1-sha1", mustPadding(t, OAEPSHA256, "sha1", 0), "32"},
		{"pkcs1v15", mustPadding(t, PKCS1v15, "", 32), "32"},
	}
	args := []string{"testdata/device_encrypt.py", "29381234"}
	for _, tc := range cases {
		args = append(args, tc.mode+":"+tc.keyBytes)
	}
	const text = "{\"temp\": 21.5, \"note\": \"grüße\"}"
	cmd := exec.Command("python3", args...)
	cmd.Stdin = bytes.NewReader(pub)
	cmd.Env = append(os.Environ(), "PLAINTEXT="+text)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(cases) {
		t.Fatalf("python wrote %d envelopes, want %d", len(lines), len(cases))
	}
	for i, tc := range cases {
		env, err := ParseEnvelope([]byte(lines[i]), 0)
		if err != nil {
			t.Fatalf("%s: %v", tc.mode, err)
		}
		got, err := tc.padding.Open(key(t), env)
		if want := text + " " + tc.mode; err != nil || string(got) != want || env.Minute != "29381234" {
			t.Errorf("%s/%s: got %q (minute %q), %v", tc.mode, tc.keyBytes, got, env.Minute, err)
		}
	}
}

func sha256New() hash.Hash { return sha256.New() }
