package tokens

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
)

func signHS256(t *testing.T, claims map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(claims))
	tok.Header["kid"] = HMACKey(secret).ID
	s, err := tok.SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if e, ok := apperr.As(err); !ok || e.Kind != apperr.Unauthenticated || e.Code != code {
		t.Fatalf("= %v, want Unauthenticated %s", err, code)
	}
}

// TestParseRefusesTokensLackingAClaim: a correctly signed token without an
// id, a subject or an issue time is refused, and so is a refresh token
// without its family (the family is what revocation hangs on).
func TestParseRefusesTokensLackingAClaim(t *testing.T) {
	m := newManager(t, Config{})
	for _, claim := range []string{"jti", "sub", "iat"} {
		t.Run(claim, func(t *testing.T) {
			c := validClaims()
			delete(c, claim)
			_, err := m.Parse(signHS256(t, c), Access)
			wantCode(t, err, "token_malformed")
		})
	}
	c := validClaims()
	c["typ"] = "refresh"
	_, err := m.Parse(signHS256(t, c), Refresh)
	wantCode(t, err, "token_malformed")
	c["fam"] = "family-1"
	if _, err := m.Parse(signHS256(t, c), Refresh); err != nil {
		t.Fatalf("with its family: %v", err)
	}
	c = validClaims()
	c["typ"] = "refresh"
	c["fam"] = "family-1"
	c["iat"] = clock.Add(time.Hour).Unix()
	_, err = m.Parse(signHS256(t, c), Refresh)
	wantCode(t, err, "token_not_yet_valid")
}

// TestParseAcceptsTokensUpToTheSizeLimit: the limit is inclusive; one
// byte more is refused before any parsing.
func TestParseAcceptsTokensUpToTheSizeLimit(t *testing.T) {
	m := newManager(t, Config{})
	c := validClaims()
	// Every 3 bytes of email add 4 characters of base64: lengthen it
	// until the token reaches the limit.
	tok := signHS256(t, c)
	for pad := 1; len(tok) < maxTokenBytes; pad++ {
		c["email"] = strings.Repeat("a", pad)
		tok = signHS256(t, c)
	}
	if len(tok) != maxTokenBytes {
		t.Fatalf("the padding gave a token of %d bytes, not %d", len(tok), maxTokenBytes)
	}
	if _, err := m.Parse(tok, Access); err != nil {
		t.Fatalf("a token of exactly %d bytes: %v", maxTokenBytes, err)
	}
}

// TestParseLeewayIsBounded: the default leeway forgives 30 seconds of
// clock skew, not more.
func TestParseLeewayIsBounded(t *testing.T) {
	m := newManager(t, Config{AccessTTL: time.Minute})
	tok := issue(t, m, Access)
	late := newManager(t, Config{Now: func() time.Time { return clock.Add(time.Minute + 31*time.Second) }})
	_, err := late.Parse(tok, Access)
	wantCode(t, err, "token_expired")
	early := newManager(t, Config{Now: func() time.Time { return clock.Add(-20 * time.Second) }})
	if _, err := early.Parse(tok, Access); err != nil {
		t.Fatalf("a token 20 s before nbf is within the leeway: %v", err)
	}
}

// TestIssueSetsLifetimeAndFamilyByType: access tokens last AccessTTL and
// carry no family even when one is passed; a refresh token needs one; an
// unknown type is refused.
func TestIssueSetsLifetimeAndFamilyByType(t *testing.T) {
	m := newManager(t, Config{AccessTTL: 5 * time.Minute, RefreshTTL: time.Hour})
	if m.AccessTTL() != 5*time.Minute || m.RefreshTTL() != time.Hour || m.Algorithm() != "HS256" {
		t.Fatalf("ttls %s %s, algorithm %s", m.AccessTTL(), m.RefreshTTL(), m.Algorithm())
	}
	iss, err := m.Issue(alice, Access, "family-1")
	if err != nil {
		t.Fatal(err)
	}
	if iss.Claims.Family != "" || iss.Claims.ExpiresAt.Sub(iss.Claims.IssuedAt.Time) != 5*time.Minute {
		t.Fatalf("access claims %+v", iss.Claims)
	}
	if _, err := m.Issue(alice, Refresh, ""); err == nil {
		t.Fatal("a refresh token without a family was issued")
	}
	if _, err := m.Issue(alice, Type("id"), "family-1"); err == nil {
		t.Fatal("a token of an unknown type was issued")
	}
	withDefaults := newManager(t, Config{AccessTTL: -time.Second})
	if withDefaults.AccessTTL() != DefaultAccessTTL || withDefaults.RefreshTTL() != DefaultRefreshTTL {
		t.Fatalf("defaults: %s %s", withDefaults.AccessTTL(), withDefaults.RefreshTTL())
	}
}

// TestNewRefusesKeysThatCannotSign: no key, or a key of no known
// algorithm, is refused at configuration time rather than at first login.
func TestNewRefusesKeysThatCannotSign(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("no signing key accepted")
	}
	k := HMACKey(secret)
	k.algorithm = "RS256"
	if _, err := New(Config{Signing: k}); err == nil || !strings.Contains(err.Error(), "unknown algorithm") {
		t.Fatalf("an RS256 key: %v", err)
	}
}

// TestSanitizeKeepsAlgorithmNamesShortAndPrintable: the name from an
// attacker's header goes into the error message at most 16 bytes long and
// without control or non-ASCII bytes.
func TestSanitizeKeepsAlgorithmNamesShortAndPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"HS512":                    "HS512",
		"0123456789abcdef":         "0123456789abcdef",
		"0123456789abcdefX":        "0123456789abcdef",
		"a\x00b\x1f\x20~\x7f\xffc": "ab ~c",
		"\x1f":                     "",
	} {
		if got := sanitize(in); got != want {
			t.Errorf("sanitize(%q) = %q, want %q", in, got, want)
		}
	}
	hs := newManager(t, Config{})
	tok := jwt.NewWithClaims(jwt.SigningMethodHS384, jwt.MapClaims(validClaims()))
	tok.Header["kid"] = HMACKey(secret).ID
	s, _ := tok.SignedString(secret)
	_, err := hs.Parse(s, Access)
	if e, ok := apperr.As(err); !ok || e.Code != "token_bad_algorithm" || !strings.Contains(e.Message, "HS384") {
		t.Fatalf("= %v, want token_bad_algorithm naming HS384", err)
	}
}
