package phone

import (
	"errors"
	"strings"
	"testing"
)

var fuzzSeeds = []string{
	"+4915200000000", "+49301234", "+491520000000000", "+447700900123",
	"", "+", "4915200000000", "+0915200000000", "+49 152 00000000", "+４９１５２００００００００",
}

func FuzzNormalize(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := Normalize(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidNumber) {
				t.Fatalf("error %v does not wrap ErrInvalidNumber", err)
			}
			return
		}
		if got != s {
			t.Fatalf("Normalize(%q) = %q; canonical input must come back unchanged", s, got)
		}
		digits := s[1:]
		if s[0] != '+' || len(digits) < minDigits || len(digits) > maxDigits ||
			strings.Trim(digits, "0123456789") != "" || digits[0] == '0' {
			t.Fatalf("Normalize accepted %q", s)
		}
	})
}

func FuzzMask(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m := Mask(s)
		if strings.Count(m, "*") != 4 {
			t.Fatalf("Mask(%q) = %q, want exactly four '*'", s, m)
		}
		if _, err := Normalize(s); err != nil {
			if m != "****" {
				t.Fatalf("Mask(%q) of an invalid number = %q, want ****", s, m)
			}
			return
		}
		digits := s[1:]
		head, tail, ok := strings.Cut(strings.TrimPrefix(m, "+"), "****")
		if !ok || !strings.HasPrefix(m, "+") || !strings.HasPrefix(digits, head) || !strings.HasSuffix(digits, tail) {
			t.Fatalf("Mask(%q) = %q is not +, leading digits, ****, trailing digits", s, m)
		}
		shown, hidden := len(head)+len(tail), len(digits)-len(head)-len(tail)
		// The product's documented form (+4915****0000) shows 8 of 13
		// digits, so "at most half" holds only below 13 digits; from 13 on
		// at least 5 digits stay hidden.
		if len(digits) < maskLongMin && shown > len(digits)/2 {
			t.Fatalf("Mask(%q) = %q shows %d of %d digits, more than half", s, m, shown, len(digits))
		}
		if len(digits) >= maskLongMin && hidden < 5 {
			t.Fatalf("Mask(%q) = %q hides only %d digits", s, m, hidden)
		}
	})
}
