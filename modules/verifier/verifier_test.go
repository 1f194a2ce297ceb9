package verifier

import (
	"crypto/x509"
	"errors"
	"math/big"
	"testing"
)

// TestUnverifiedCertificatesAreRefused: with client_auth modes that do not
// verify the chain, a presented certificate proves nothing and its serial
// must not be looked up.
func TestUnverifiedCertificatesAreRefused(t *testing.T) {
	cert := &x509.Certificate{SerialNumber: big.NewInt(1)}
	cases := map[string]struct {
		raw      [][]byte
		verified [][]*x509.Certificate
		reason   string
	}{
		"verified chain":            {[][]byte{{1}}, [][]*x509.Certificate{{cert}}, ""},
		"presented, not verified":   {[][]byte{{1}}, nil, ReasonNotVerified},
		"nothing presented":         {nil, nil, ReasonNoCertificate},
		"empty verified chain list": {[][]byte{{1}}, [][]*x509.Certificate{{}}, ReasonNotVerified},
	}
	for name, tc := range cases {
		leaf, err := leafOf(tc.raw, tc.verified)
		refusal, _ := errors.AsType[*Refusal](err)
		if (err != nil) != (tc.reason != "") || (refusal != nil && refusal.Reason != tc.reason) {
			t.Errorf("%s: leafOf = %v, %v; want reason %q", name, leaf, err, tc.reason)
		}
		if err == nil && leaf != cert {
			t.Errorf("%s: wrong leaf", name)
		}
	}
}
