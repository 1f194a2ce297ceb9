// Package tokens issues and checks the broker's JWTs: access tokens, which
// authenticate a portal or admin request, and refresh tokens, which buy a
// new pair. It is the one token implementation the portal and the admin
// API share.
//
// Exactly one algorithm is accepted, the configured one: HS256 over the
// app's jwt_secret by default, or EdDSA over Ed25519 keys. Every token
// names its key in the `kid` header, so keys rotate without logging anyone
// out: the newest key signs, and older keys keep verifying the tokens they
// signed until those expire. A `typ` claim keeps the two kinds apart — a
// refresh token is never an access token, nor the reverse.
//
// Every refusal is an apperr Unauthenticated error with its own code
// (token_expired, token_bad_signature, …), so a client and an operator
// reading logs can tell why a token was refused; none repeats the token.
package tokens

import (
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
)

// Algorithms the broker signs with.
const (
	HS256 = "HS256"
	EdDSA = "EdDSA"
)

// Type tells an access token from a refresh token.
type Type string

// Token types, carried in the typ claim.
const (
	Access  Type = "access"
	Refresh Type = "refresh"
)

// Defaults of a Config.
const (
	DefaultAccessTTL  = 24 * time.Hour
	DefaultRefreshTTL = 30 * 24 * time.Hour
	DefaultIssuer     = "msgbroker"
	DefaultAudience   = "msgbroker-portal"
	// DefaultLeeway absorbs clock skew between nodes: a token is honoured
	// this long past its exp and this long before its nbf.
	DefaultLeeway = 30 * time.Second
	// maxTokenBytes bounds what the parser reads; real tokens are a few
	// hundred bytes.
	maxTokenBytes = 4096
)

// Key is one signing or verifying key, named by its key id.
type Key struct {
	// ID is the kid header value; see HMACKey and Ed25519Key for how it
	// is derived.
	ID        string
	algorithm string
	sign      crypto.PrivateKey
	verify    crypto.PublicKey
}

// HMACKey is an HS256 key. Its id is derived from a hash of the secret, so
// the same secret has the same id on every node and after restarts, and
// the id reveals nothing usable of a 256-bit secret.
func HMACKey(secret []byte) Key {
	sum := sha256.Sum256(append([]byte("msgbroker kid\x00"), secret...))
	return Key{ID: "hs-" + hex.EncodeToString(sum[:6]), algorithm: HS256, sign: secret, verify: secret}
}

// Ed25519Key is an EdDSA key that signs and verifies.
func Ed25519Key(priv ed25519.PrivateKey) Key {
	k := Ed25519PublicKey(priv.Public().(ed25519.PublicKey))
	k.sign = priv
	return k
}

// Ed25519PublicKey is an EdDSA key that only verifies (a retired key, or
// a node that must not sign).
func Ed25519PublicKey(pub ed25519.PublicKey) Key {
	sum := sha256.Sum256(pub)
	return Key{ID: "ed-" + hex.EncodeToString(sum[:6]), algorithm: EdDSA, verify: pub}
}

// Config configures a Manager.
type Config struct {
	// Signing signs new tokens and verifies them.
	Signing Key
	// Previous keys only verify: tokens they signed stay valid until they
	// expire. They must use the signing key's algorithm.
	Previous []Key
	// Issuer and Audience are the iss and aud every token carries and
	// must carry (defaults DefaultIssuer, DefaultAudience).
	Issuer, Audience string
	// AccessTTL and RefreshTTL are token lifetimes (defaults
	// DefaultAccessTTL, DefaultRefreshTTL).
	AccessTTL, RefreshTTL time.Duration
	// Leeway is the tolerated clock skew (default DefaultLeeway).
	Leeway time.Duration
	// Now is the clock (default time.Now), for tests.
	Now func() time.Time
}

// Manager issues and parses tokens. It is safe for concurrent use.
type Manager struct {
	cfg    Config
	method jwt.SigningMethod
	keys   map[string]Key
	parser *jwt.Parser
}

// New checks cfg, applies its defaults and returns a Manager.
func New(cfg Config) (*Manager, error) {
	if cfg.Signing.ID == "" || cfg.Signing.sign == nil {
		return nil, errors.New("tokens: a signing key is required")
	}
	if cfg.Signing.algorithm == HS256 && len(cfg.Signing.sign.([]byte)) < 32 {
		return nil, errors.New("tokens: an HS256 secret needs at least 32 bytes")
	}
	cfg.Issuer = orString(cfg.Issuer, DefaultIssuer)
	cfg.Audience = orString(cfg.Audience, DefaultAudience)
	cfg.AccessTTL = orDuration(cfg.AccessTTL, DefaultAccessTTL)
	cfg.RefreshTTL = orDuration(cfg.RefreshTTL, DefaultRefreshTTL)
	if cfg.Leeway == 0 {
		cfg.Leeway = DefaultLeeway
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m := &Manager{cfg: cfg, keys: map[string]Key{cfg.Signing.ID: cfg.Signing}}
	switch cfg.Signing.algorithm {
	case HS256:
		m.method = jwt.SigningMethodHS256
	case EdDSA:
		m.method = jwt.SigningMethodEdDSA
	default:
		return nil, fmt.Errorf("tokens: unknown algorithm %q", cfg.Signing.algorithm)
	}
	for _, k := range cfg.Previous {
		if k.algorithm != cfg.Signing.algorithm {
			return nil, fmt.Errorf("tokens: verifying key %s is %s, but tokens are signed with %s", k.ID, k.algorithm, cfg.Signing.algorithm)
		}
		m.keys[k.ID] = k
	}
	m.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{m.method.Alg()}),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(cfg.Now),
		jwt.WithStrictDecoding(),
	)
	return m, nil
}

// Algorithm is the one algorithm this manager signs with and accepts.
func (m *Manager) Algorithm() string { return m.method.Alg() }

// AccessTTL and RefreshTTL are the configured lifetimes.
func (m *Manager) AccessTTL() time.Duration  { return m.cfg.AccessTTL }
func (m *Manager) RefreshTTL() time.Duration { return m.cfg.RefreshTTL }

// Subject is whom a token is for.
type Subject struct {
	UserID int64
	Email  string
	Role   string
	// PasswordStamp identifies the password the subject had when the
	// token was issued (the time it was set, in microseconds), so a
	// password change ends every token issued before it.
	PasswordStamp int64
}

// Claims are the broker's JWT claims.
type Claims struct {
	jwt.RegisteredClaims
	Email string `json:"email"`
	Role  string `json:"role"`
	Type  Type   `json:"typ"`
	// PasswordStamp is Subject.PasswordStamp.
	PasswordStamp int64 `json:"pws"`
	// Family ties a refresh token to the login it descends from; empty in
	// access tokens.
	Family string `json:"fam,omitempty"`
}

// Issued is a signed token and what it says.
type Issued struct {
	Token  string
	Claims *Claims
}

// Issue signs a new token of type typ for sub. family is the refresh
// family (required for refresh tokens, ignored for access tokens).
func (m *Manager) Issue(sub Subject, typ Type, family string) (Issued, error) {
	ttl := m.cfg.AccessTTL
	switch typ {
	case Access:
		family = ""
	case Refresh:
		if family == "" {
			return Issued{}, errors.New("tokens: a refresh token needs a family")
		}
		ttl = m.cfg.RefreshTTL
	default:
		return Issued{}, fmt.Errorf("tokens: unknown token type %q", typ)
	}
	now := m.cfg.Now().UTC().Truncate(time.Second)
	c := &Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   fmt.Sprint(sub.UserID),
			Issuer:    m.cfg.Issuer,
			Audience:  jwt.ClaimStrings{m.cfg.Audience},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
			ID:        uuid.NewString(),
		},
		Email: sub.Email, Role: sub.Role, Type: typ, Family: family, PasswordStamp: sub.PasswordStamp,
	}
	t := jwt.NewWithClaims(m.method, c)
	t.Header["kid"] = m.cfg.Signing.ID
	signed, err := t.SignedString(m.cfg.Signing.sign)
	if err != nil {
		return Issued{}, fmt.Errorf("tokens: signing: %w", err)
	}
	return Issued{Token: signed, Claims: c}, nil
}

// errUnknownKey marks a kid this manager does not hold.
var errUnknownKey = errors.New("unknown key id")

// Parse verifies token and returns its claims if it is a valid token of
// type want. Every refusal is an Unauthenticated *apperr.Error whose code
// says why.
func (m *Manager) Parse(token string, want Type) (*Claims, error) {
	if token == "" {
		return nil, refuse("token_missing", "no token was presented")
	}
	if len(token) > maxTokenBytes {
		return nil, refuse("token_malformed", "the token is not a JWT")
	}
	c := new(Claims)
	t, err := m.parser.ParseWithClaims(token, c, m.key)
	if err != nil {
		return nil, m.explain(t, err)
	}
	if c.Type != want {
		return nil, refuse("token_wrong_type", "a %s token was presented where an %s token is required", orString(string(c.Type), "untyped"), want)
	}
	if c.ID == "" || c.Subject == "" || c.IssuedAt == nil {
		return nil, refuse("token_malformed", "the token lacks a required claim")
	}
	if want == Refresh && c.Family == "" {
		return nil, refuse("token_malformed", "the refresh token lacks its family")
	}
	return c, nil
}

// key is the jwt.Keyfunc: the key the kid header names.
func (m *Manager) key(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	k, ok := m.keys[kid]
	if !ok {
		return nil, errUnknownKey
	}
	return k.verify, nil
}

// explain turns a parser error into the refusal a client sees. Claims
// errors are checked in a fixed order because the validator reports all
// of them at once.
func (m *Manager) explain(t *jwt.Token, err error) error {
	if t != nil && t.Method != nil && t.Method.Alg() != m.method.Alg() {
		return refuse("token_bad_algorithm", "tokens signed with %s are not accepted", sanitize(t.Method.Alg()))
	}
	if t != nil && t.Method == nil && errors.Is(err, jwt.ErrTokenUnverifiable) {
		return refuse("token_bad_algorithm", "the token's algorithm is not accepted")
	}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return refuse("token_malformed", "the token is not a JWT")
	case errors.Is(err, errUnknownKey):
		return refuse("token_unknown_key", "the token was signed by a key this server does not know")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return refuse("token_bad_signature", "the token's signature does not verify")
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return refuse("token_wrong_issuer", "the token was issued by someone else")
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return refuse("token_wrong_audience", "the token is meant for another audience")
	case errors.Is(err, jwt.ErrTokenExpired):
		return refuse("token_expired", "the token has expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return refuse("token_not_yet_valid", "the token is not valid yet")
	}
	return refuse("token_malformed", "the token's claims are invalid")
}

// sanitize keeps an attacker-chosen algorithm name short and printable
// before it goes into a message.
func sanitize(s string) string {
	if len(s) > 16 {
		s = s[:16]
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 0x20 && c < 0x7f {
			out = append(out, c)
		}
	}
	return string(out)
}

func refuse(code, format string, args ...any) error {
	return apperr.New(apperr.Unauthenticated, code, format, args...)
}

func orString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func orDuration(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
