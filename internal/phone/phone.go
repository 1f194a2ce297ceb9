// Package phone validates, hashes and masks the sender numbers of
// messages.
//
// A number is validated once with [Normalize], then stored twice: as a
// keyed hash ([Hasher.Hash]) to search and compare by, and in masked form
// ([Mask]) to show, since a hash cannot be masked afterwards. The plain
// number is never stored, logged, or quoted in an error.
//
// The package knows nothing of Caddy so the server and the admin CLI
// share one implementation.
package phone

import (
	"errors"
	"fmt"
)

const (
	minDigits = 8
	maxDigits = 15 // ITU-T E.164's limit, country code included
)

// ErrInvalidNumber is wrapped by every error from [Normalize], with a
// message saying what is wrong.
var ErrInvalidNumber = errors.New("invalid phone number")

// Normalize returns s if it is a phone number in canonical E.164 form:
// '+', then 8 to 15 ASCII digits of which the first, the start of the
// country code, is not 0. For example "+4915200000000".
//
// Only the canonical form is accepted; spaces, hyphens, dots and
// parentheses are rejected rather than stripped. The numbers come from
// the proxies, which are programs and can send E.164, and guessing at
// pasted formats is not safe: "+49 (0)152 …" means "+49152…", so
// stripping the parentheses would store a different number, and every
// spelling of a number must hash to the same value for lookups to work.
// The function is called Normalize, and callers store its result, so that
// accepting more spellings later would not change any caller.
//
// Errors wrap [ErrInvalidNumber] and never include s, which may be a real
// number and ends up in logs and HTTP responses.
func Normalize(s string) (string, error) {
	if s == "" {
		return "", invalid("is empty")
	}
	if s[0] != '+' {
		return "", invalid("must start with +")
	}
	digits := s[1:]
	for i := 0; i < len(digits); i++ {
		// Bytes, not runes: this rejects non-ASCII digits such as '１'
		// along with everything else outside '0'..'9'.
		if digits[i] < '0' || digits[i] > '9' {
			return "", invalid("must contain only digits after + (no spaces or separators)")
		}
	}
	if len(digits) < minDigits || len(digits) > maxDigits {
		return "", invalid(fmt.Sprintf("must contain %d to %d digits, got %d", minDigits, maxDigits, len(digits)))
	}
	if digits[0] == '0' {
		return "", invalid("country code must not start with 0")
	}
	return s, nil
}

func invalid(reason string) error {
	return fmt.Errorf("%w: %s", ErrInvalidNumber, reason)
}

// maskLongMin is the digit count from which Mask shows four digits at
// each end: the length of the product's documented example.
const maskLongMin = 13

// Mask returns the display form of a number that passed [Normalize]: '+',
// a few leading digits, exactly four '*' whatever the number of digits
// hidden, and a few trailing digits.
//
//   - 13 to 15 digits: the first 4 and the last 4 digits, the product's
//     documented form, which hides at least 5 digits.
//   - 8 to 12 digits: the first 2 and the last 2 digits, never more than
//     half of the digits.
//
// Examples:
//
//	+4915200000000   (13 digits)  +4915****0000
//	+491520000000000 (15 digits)  +4915****0000
//	+447700900123    (12 digits)  +44****23
//	+14155552671     (11 digits)  +14****71
//	+49301234        (8 digits)   +49****34
//
// The four asterisks do not say how many digits are hidden; only which of
// the two groups the length falls in shows. Anything that is not a valid
// number masks to "****", so a caller's mistake never reveals its input.
func Mask(e164 string) string {
	if _, err := Normalize(e164); err != nil {
		return "****"
	}
	digits := e164[1:]
	shown := 2
	if len(digits) >= maskLongMin {
		shown = 4
	}
	return "+" + digits[:shown] + "****" + digits[len(digits)-shown:]
}
