package clientca

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
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
