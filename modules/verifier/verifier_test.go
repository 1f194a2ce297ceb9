package verifier

import (
	"crypto/x509"
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
		wantErr  bool
	}{
		"verified chain":            {[][]byte{{1}}, [][]*x509.Certificate{{cert}}, false},
		"presented, not verified":   {[][]byte{{1}}, nil, true},
		"nothing presented":         {nil, nil, true},
		"empty verified chain list": {[][]byte{{1}}, [][]*x509.Certificate{{}}, true},
	}
	for name, tc := range cases {
		leaf, err := leafOf(tc.raw, tc.verified)
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: leafOf = %v, %v", name, leaf, err)
		}
		if err == nil && leaf != cert {
			t.Errorf("%s: wrong leaf", name)
		}
	}
}
