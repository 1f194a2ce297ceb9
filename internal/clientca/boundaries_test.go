package clientca

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
)

// TestConfigLimitsAreInclusive: a max leaf lifetime of exactly the minimum
// and an intermediate of exactly twice the max leaf lifetime are allowed;
// a nanosecond less of either is refused.
func TestConfigLimitsAreInclusive(t *testing.T) {
	st := newStorage(t)
	ok := []Config{
		{CAID: "local", Storage: st, MaxLeafLifetime: MinLeafLifetime, IntermediateLifetime: 2 * MinLeafLifetime},
		{CAID: "local", Storage: st, MaxLeafLifetime: 10 * MinLeafLifetime, IntermediateLifetime: 20 * MinLeafLifetime},
	}
	for _, cfg := range ok {
		if _, err := New(cfg); err != nil {
			t.Errorf("New(max leaf %s, intermediate %s) = %v, want it accepted", cfg.MaxLeafLifetime, cfg.IntermediateLifetime, err)
		}
	}
	refused := []Config{
		{CAID: "local", Storage: st, MaxLeafLifetime: MinLeafLifetime - time.Nanosecond, IntermediateLifetime: 2 * MinLeafLifetime},
		{CAID: "local", Storage: st, MaxLeafLifetime: 10 * MinLeafLifetime, IntermediateLifetime: 20*MinLeafLifetime - time.Nanosecond},
	}
	for _, cfg := range refused {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(max leaf %s, intermediate %s) succeeded, want it refused", cfg.MaxLeafLifetime, cfg.IntermediateLifetime)
		}
	}
}

// TestParseSerialHexLimits: 64 hex digits (leading zeros included) and 20
// octets are the documented limits, both inclusive.
func TestParseSerialHexLimits(t *testing.T) {
	twentyOctets := strings.Repeat("ab", 20)
	for _, s := range []string{
		strings.Repeat("0", 63) + "1",          // 64 digits
		strings.Repeat("0", 24) + twentyOctets, // 64 digits, 20 octets
		twentyOctets,
	} {
		if _, err := ParseSerialHex(s); err != nil {
			t.Errorf("ParseSerialHex(%q) = %v, want it accepted", s, err)
		}
	}
	for _, s := range []string{
		strings.Repeat("0", 64) + "1", // 65 digits
		"01" + twentyOctets,           // 21 octets
	} {
		if _, err := ParseSerialHex(s); err == nil || !strings.Contains(err.Error(), "longer than 20 octets") {
			t.Errorf("ParseSerialHex(%q) = %v, want it refused as too long", s, err)
		}
	}
}

// TestParseCSRSizeLimitIsInclusive: input of exactly MaxCSRSize bytes is
// parsed (and refused for what it is); one byte more is refused for its
// size before it is read.
func TestParseCSRSizeLimitIsInclusive(t *testing.T) {
	at := bytes.Repeat([]byte("x"), MaxCSRSize)
	if _, err := ParseCSR(at); !errors.Is(err, ErrBadCSR) || strings.Contains(err.Error(), "exceeds the limit") {
		t.Errorf("ParseCSR(%d bytes) = %v, want a refusal of its content, not of its size", len(at), err)
	}
	over := append(at, 'x')
	if _, err := ParseCSR(over); !errors.Is(err, ErrBadCSR) || !strings.Contains(err.Error(), "exceeds the limit") {
		t.Errorf("ParseCSR(%d bytes) = %v, want it refused for its size", len(over), err)
	}
}

// TestSanitizePEMTypeDropsExactlyTheControlCharacters: C0 controls and DEL
// go, the printable characters at their edges stay.
func TestSanitizePEMTypeDropsExactlyTheControlCharacters(t *testing.T) {
	in := "\x00A\x1f \x7e\x7fB\t"
	if got, want := sanitizePEMType(in), "A ~B"; got != want {
		t.Errorf("sanitizePEMType(%q) = %q, want %q", in, got, want)
	}
}

// TestLeafLifetimeOfExactlyTheMinimumIsIssued: MinLeafLifetime itself is
// allowed, a second less is refused.
func TestLeafLifetimeOfExactlyTheMinimumIsIssued(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	iss, err := f.issuer.Issue(ctx, Request{ClientID: "p1", Role: RoleProxy, Lifetime: MinLeafLifetime})
	if err != nil {
		t.Fatalf("lifetime of exactly MinLeafLifetime (%s) refused: %v", MinLeafLifetime, err)
	}
	if got := iss.Certificate.NotAfter.Sub(f.clock.Now().Truncate(time.Second)); got != MinLeafLifetime {
		t.Errorf("lifetime = %s, want %s", got, MinLeafLifetime)
	}
	if _, err := f.issuer.Issue(ctx, Request{ClientID: "p1", Role: RoleProxy, Lifetime: MinLeafLifetime - time.Second}); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("lifetime of MinLeafLifetime - 1s: err = %v, want ErrInvalidRequest", err)
	}
}

// TestIntermediateWithExactlyMaxLeafLifetimeLeftIsKept: rotation starts only
// when less than MaxLeafLifetime is left; with exactly that much, a leaf of
// the longest lifetime still fits, so the intermediate is kept. A second
// (the resolution of the issuer's clock) later it is rotated.
func TestIntermediateWithExactlyMaxLeafLifetimeLeftIsKept(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	first, _, err := f.issuer.Intermediate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Set(first.NotAfter.Add(-DefaultMaxLeafLifetime))
	kept, _, err := f.issuer.Intermediate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if kept.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Fatalf("intermediate rotated with exactly MaxLeafLifetime (%s) left", DefaultMaxLeafLifetime)
	}
	f.clock.Advance(time.Second)
	rotated, _, err := f.issuer.Intermediate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rotated.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatal("intermediate not rotated with less than MaxLeafLifetime left")
	}
}

// unlockFails is a storage whose lock cannot be released.
type unlockFails struct{ certmagic.Storage }

func (unlockFails) Unlock(context.Context, string) error { return errors.New("lock file vanished") }

// TestFailedLockReleaseIsReported: when the storage lock taken to create the
// intermediate cannot be released, Issue says so instead of succeeding
// silently (other nodes would wait for the lock to expire).
func TestFailedLockReleaseIsReported(t *testing.T) {
	f := newFixture(t)
	iss, err := New(Config{CAID: "local", Name: "Test CA", Storage: unlockFails{f.st}, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	_, err = iss.Issue(context.Background(), Request{ClientID: "p1", Role: RoleProxy})
	if err == nil || !strings.Contains(err.Error(), "releasing storage lock") || !strings.Contains(err.Error(), "lock file vanished") {
		t.Fatalf("Issue = %v, want the failed lock release reported", err)
	}
}

// TestCRLListsSerialsInAscendingOrder, whatever the order they are given in,
// so successive CRLs are easy to diff.
func TestCRLListsSerialsInAscendingOrder(t *testing.T) {
	f := newFixture(t)
	at := f.clock.Now().Add(-time.Hour)
	var revoked []RevokedCert
	for _, s := range []string{"0a", "ff01", "03", "7f", "0100", "02"} {
		revoked = append(revoked, RevokedCert{SerialHex: s, RevokedAt: at, Reason: "superseded"})
	}
	der, err := f.issuer.CRL(context.Background(), revoked, big.NewInt(1), day)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range crl.RevokedCertificateEntries {
		got = append(got, e.SerialNumber.Text(16))
	}
	if want := []string{"2", "3", "a", "7f", "100", "ff01"}; !slices.Equal(got, want) {
		t.Errorf("CRL serials %v, want %v", got, want)
	}
}

// TestParseCSRKeepsCryptoX509sOwnMessage: a request whose key is on a curve
// crypto/x509 does not know is refused with that library's short message,
// which tells the client what is wrong, not with the generic one.
func TestParseCSRKeepsCryptoX509sOwnMessage(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der := csrDER(t, key)
	p256 := []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07} // OID 1.2.840.10045.3.1.7
	p192 := bytes.Clone(p256)
	p192[len(p192)-1] = 0x01 // 1.2.840.10045.3.1.1, prime192v1: same length, unknown to crypto/x509
	if bytes.Count(der, p256) != 1 {
		t.Fatal("test setup: the P-256 OID is not in the request once")
	}
	_, err = ParseCSR(pemOf("CERTIFICATE REQUEST", bytes.Replace(der, p256, p192, 1)))
	if !errors.Is(err, ErrBadCSR) || !strings.Contains(err.Error(), "parsing DER: unsupported elliptic curve") {
		t.Fatalf("ParseCSR(P-192 key) = %v, want crypto/x509's message", err)
	}
}
