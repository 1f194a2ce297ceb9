package phone

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalizeAcceptsCanonicalE164(t *testing.T) {
	for _, s := range []string{
		"+4915200000000",   // the product's example, 13 digits
		"+12025550123",     // North America, 11 digits
		"+49301234",        // 8 digits, the minimum
		"+491520000000000", // 15 digits, the maximum
		"+999999999999999",
	} {
		got, err := Normalize(s)
		if err != nil || got != s {
			t.Errorf("Normalize(%q) = %q, %v; want it unchanged", s, got, err)
		}
	}
}

func TestNormalizeRejectsNonE164(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "is empty"},
		{"no plus", "4915200000000", "must start with +"},
		{"national format", "015200000000", "must start with +"},
		{"international prefix instead of plus", "004915200000000", "must start with +"},
		{"plus only", "+", "must contain 8 to 15 digits, got 0"},
		{"too short", "+4930123", "must contain 8 to 15 digits, got 7"},
		{"too long", "+4915200000000000", "must contain 8 to 15 digits, got 16"},
		{"leading zero country code", "+0915200000000", "country code must not start with 0"},
		{"letters", "+49152ABCDEFG", "must contain only digits after +"},
		{"spaces", "+49 152 00000000", "must contain only digits after +"},
		{"hyphens", "+49-152-00000000", "must contain only digits after +"},
		{"parentheses", "+49(0)15200000000", "must contain only digits after +"},
		{"fullwidth digits", "+４９１５２００００００００", "must contain only digits after +"},
		{"fullwidth digit among ascii", "+491520000000１", "must contain only digits after +"},
		{"arabic-indic digits", "+٤٩١٥٢٠٠٠٠٠٠٠٠", "must contain only digits after +"},
		{"trailing newline", "+4915200000000\n", "must contain only digits after +"},
		{"two plus signs", "++4915200000000", "must contain only digits after +"},
		{"leading space", " +4915200000000", "must start with +"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Normalize(tt.in)
			if !errors.Is(err, ErrInvalidNumber) {
				t.Fatalf("Normalize(%q) = %q, %v; want ErrInvalidNumber", tt.in, got, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			if tt.in != "" && strings.Contains(err.Error(), strings.TrimSpace(tt.in)) {
				t.Errorf("error %q quotes the number", err)
			}
		})
	}
}

func TestMask(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"+4915200000000", "+4915****0000"}, // the product's documented example
		{"+491520000000000", "+4915****0000"},
		{"+49152123456789", "+4915****6789"},
		{"+447700900123", "+44****23"},
		{"+14155552671", "+14****71"},
		{"+4930123456", "+49****56"},
		{"+49301234", "+49****34"},
		{"", "****"},
		{"4915200000000", "****"},
		{"+49 152 00000000", "****"},
		{"+49152", "****"},
	}
	for _, tt := range tests {
		if got := Mask(tt.in); got != tt.want {
			t.Errorf("Mask(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
