package tokens

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
)

var (
	secret      = []byte("0123456789abcdef0123456789abcdef")
	otherSecret = []byte("fedcba9876543210fedcba9876543210")
	clock       = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	alice       = Subject{UserID: 7, Email: "alice@example.com", Role: "user"}
)

func newManager(t testing.TB, cfg Config) *Manager {
	t.Helper()
	if cfg.Signing.ID == "" {
		cfg.Signing = HMACKey(secret)
	}
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return clock }
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func issue(t testing.TB, m *Manager, typ Type) string {
	t.Helper()
	fam := ""
	if typ == Refresh {
		fam = "family-1"
	}
	iss, err := m.Issue(alice, typ, fam)
	if err != nil {
		t.Fatal(err)
	}
	return iss.Token
}

func newEd25519(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

// forge builds a token with the given header and claims and signs it with
// sign (nil: an empty signature).
func forge(t *testing.T, header map[string]any, claims map[string]any, sign func(string) []byte) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	unsigned := enc(header) + "." + enc(claims)
	var sig []byte
	if sign != nil {
		sig = sign(unsigned)
	}
	return unsigned + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func validClaims() map[string]any {
	return map[string]any{
		"sub": "7", "email": "alice@example.com", "role": "admin", "typ": "access",
		"iss": DefaultIssuer, "aud": []string{DefaultAudience}, "jti": "x",
		"iat": clock.Unix(), "nbf": clock.Unix(), "exp": clock.Add(time.Hour).Unix(),
	}
}

func TestParseRefusesForgedTokensWithDistinctCodes(t *testing.T) {
	hs := newManager(t, Config{})
	edKey := newEd25519(t)
	ed := newManager(t, Config{Signing: Ed25519Key(edKey)})
	hsKid := HMACKey(secret).ID

	cases := []struct {
		name  string
		m     *Manager
		token func(t *testing.T) string
		want  Type
		code  string
	}{
		{"empty", hs, func(*testing.T) string { return "" }, Access, "token_missing"},
		{"not a JWT", hs, func(*testing.T) string { return "hello" }, Access, "token_malformed"},
		{"oversized", hs, func(*testing.T) string { return strings.Repeat("a", maxTokenBytes+1) }, Access, "token_malformed"},
		{"alg none", hs, func(t *testing.T) string {
			return forge(t, map[string]any{"alg": "none", "typ": "JWT", "kid": hsKid}, validClaims(), nil)
		}, Access, "token_bad_algorithm"},
		{"alg unknown to the library", hs, func(t *testing.T) string {
			return forge(t, map[string]any{"alg": "XS999", "kid": hsKid}, validClaims(), nil)
		}, Access, "token_bad_algorithm"},
		{"HS512 with the right secret", hs, func(t *testing.T) string {
			tok := jwt.NewWithClaims(jwt.SigningMethodHS512, jwt.MapClaims(validClaims()))
			tok.Header["kid"] = hsKid
			s, err := tok.SignedString(secret)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, Access, "token_bad_algorithm"},
		{"HS256 signed with the public key of an EdDSA setup", ed, func(t *testing.T) string {
			pub := edKey.Public().(ed25519.PublicKey)
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(validClaims()))
			tok.Header["kid"] = Ed25519PublicKey(pub).ID
			s, err := tok.SignedString([]byte(pub))
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, Access, "token_bad_algorithm"},
		{"bad signature under a known kid", hs, func(t *testing.T) string {
			k := HMACKey(otherSecret)
			k.ID = hsKid
			return issue(t, newManager(t, Config{Signing: k}), Access)
		}, Access, "token_bad_signature"},
		{"unknown kid", hs, func(t *testing.T) string {
			return issue(t, newManager(t, Config{Signing: HMACKey(otherSecret)}), Access)
		}, Access, "token_unknown_key"},
		{"wrong issuer", hs, func(t *testing.T) string {
			return issue(t, newManager(t, Config{Issuer: "someone-else"}), Access)
		}, Access, "token_wrong_issuer"},
		{"wrong audience", hs, func(t *testing.T) string {
			return issue(t, newManager(t, Config{Audience: "admin-console"}), Access)
		}, Access, "token_wrong_audience"},
		{"expired", hs, func(t *testing.T) string {
			past := clock.Add(-25 * time.Hour)
			return issue(t, newManager(t, Config{Now: func() time.Time { return past }}), Access)
		}, Access, "token_expired"},
		{"not valid yet", hs, func(t *testing.T) string {
			future := clock.Add(10 * time.Minute)
			return issue(t, newManager(t, Config{Now: func() time.Time { return future }}), Access)
		}, Access, "token_not_yet_valid"},
		{"without exp", hs, func(t *testing.T) string {
			c := validClaims()
			delete(c, "exp")
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(c))
			tok.Header["kid"] = hsKid
			s, _ := tok.SignedString(secret)
			return s
		}, Access, "token_malformed"},
		{"refresh token as access token", hs, func(t *testing.T) string { return issue(t, hs, Refresh) }, Access, "token_wrong_type"},
		{"access token as refresh token", hs, func(t *testing.T) string { return issue(t, hs, Access) }, Refresh, "token_wrong_type"},
		{"untyped token", hs, func(t *testing.T) string {
			c := validClaims()
			delete(c, "typ")
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(c))
			tok.Header["kid"] = hsKid
			s, _ := tok.SignedString(secret)
			return s
		}, Access, "token_wrong_type"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.m.Parse(tc.token(t), tc.want)
			e, ok := apperr.As(err)
			if !ok {
				t.Fatalf("Parse error = %v, want an apperr %s", err, tc.code)
			}
			if e.Kind != apperr.Unauthenticated || e.Code != tc.code {
				t.Fatalf("Parse refused with kind %d code %s (%v), want Unauthenticated %s", e.Kind, e.Code, err, tc.code)
			}
		})
	}
}

func TestParseAcceptsWhatItIssued(t *testing.T) {
	for name, key := range map[string]Key{"HS256": HMACKey(secret), "EdDSA": Ed25519Key(newEd25519(t))} {
		t.Run(name, func(t *testing.T) {
			m := newManager(t, Config{Signing: key})
			c, err := m.Parse(issue(t, m, Refresh), Refresh)
			if err != nil {
				t.Fatal(err)
			}
			if c.Subject != "7" || c.Email != alice.Email || c.Role != alice.Role || c.Family != "family-1" || c.ID == "" {
				t.Fatalf("claims = %+v", c)
			}
			if got := c.ExpiresAt.Sub(c.IssuedAt.Time); got != DefaultRefreshTTL {
				t.Fatalf("refresh lifetime = %s, want %s", got, DefaultRefreshTTL)
			}
		})
	}
}

func TestParseHonoursLeewayForSkewedClocks(t *testing.T) {
	m := newManager(t, Config{AccessTTL: time.Minute})
	tok := issue(t, m, Access)
	late := newManager(t, Config{Now: func() time.Time { return clock.Add(time.Minute + 10*time.Second) }})
	if _, err := late.Parse(tok, Access); err != nil {
		t.Fatalf("a token 10 s past exp is within the leeway: %v", err)
	}
}

func TestRotatedKeysKeepVerifyingUntilRemoved(t *testing.T) {
	old := HMACKey(secret)
	oldM := newManager(t, Config{Signing: old})
	tok := issue(t, oldM, Access)

	rotated := newManager(t, Config{Signing: HMACKey(otherSecret), Previous: []Key{old}})
	if _, err := rotated.Parse(tok, Access); err != nil {
		t.Fatalf("a token of the previous key must still verify: %v", err)
	}
	if _, err := oldM.Parse(issue(t, rotated, Access), Access); err == nil {
		t.Fatal("the new key's tokens verified under a manager that does not hold it")
	}
	retired := newManager(t, Config{Signing: HMACKey(otherSecret)})
	_, err := retired.Parse(tok, Access)
	if e, _ := apperr.As(err); e == nil || e.Code != "token_unknown_key" {
		t.Fatalf("after removing the old key: %v, want token_unknown_key", err)
	}
}

func TestNewRefusesMixedAlgorithmsAndShortSecrets(t *testing.T) {
	if _, err := New(Config{Signing: HMACKey(secret), Previous: []Key{Ed25519Key(newEd25519(t))}}); err == nil {
		t.Fatal("an EdDSA verifying key beside an HS256 signing key was accepted")
	}
	if _, err := New(Config{Signing: HMACKey([]byte("short"))}); err == nil {
		t.Fatal("a 5-byte HS256 secret was accepted")
	}
}

func FuzzParse(f *testing.F) {
	m := newManager(f, Config{})
	f.Add(issue(f, m, Access))
	f.Add(issue(f, m, Refresh))
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, tok string) {
		for _, want := range []Type{Access, Refresh} {
			c, err := m.Parse(tok, want)
			if err != nil {
				if apperr.KindOf(err) != apperr.Unauthenticated {
					t.Fatalf("refusal of kind %d: %v", apperr.KindOf(err), err)
				}
				continue
			}
			if c.Type != want || c.Issuer != DefaultIssuer || c.ID == "" {
				t.Fatalf("accepted %q with claims %+v", tok, c)
			}
		}
	})
}
