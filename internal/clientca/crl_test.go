package clientca

import (
	"context"
	"crypto/x509"
	"math/big"
	"strings"
	"testing"
	"time"
)

func TestCRL(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a := f.issue(t, Request{ClientID: "p1", Role: RoleProxy})
	b := f.issue(t, Request{ClientID: "w1", Role: RoleWorker})
	c := f.issue(t, Request{ClientID: "w2", Role: RoleWorker})
	now := f.clock.Now().Truncate(time.Second)

	// b's serial in the colon-separated upper-case form other tools print.
	bUpper := strings.ToUpper(b.SerialHex)
	if len(bUpper)%2 == 1 {
		bUpper = "0" + bUpper
	}
	var parts []string
	for n := 0; n < len(bUpper); n += 2 {
		parts = append(parts, bUpper[n:n+2])
	}
	revoked := []RevokedCert{
		{SerialHex: a.SerialHex, RevokedAt: now.Add(-time.Hour), Reason: "keyCompromise"},
		{SerialHex: strings.Join(parts, ":"), RevokedAt: now.Add(-2 * time.Hour), Reason: "superseded"},
		{SerialHex: c.SerialHex, RevokedAt: now.Add(-3 * time.Hour), Reason: "operator said so"},
		{SerialHex: a.SerialHex, RevokedAt: now, Reason: "duplicate"},
	}
	der, err := f.issuer.CRL(ctx, revoked, big.NewInt(42), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	inter, _, err := f.issuer.Intermediate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(inter); err != nil {
		t.Fatalf("CRL not signed by the client-issuing intermediate: %v", err)
	}
	if err := crl.CheckSignatureFrom(f.root); err == nil {
		t.Error("CRL verifies against the root")
	}
	if crl.Number.Int64() != 42 || !crl.ThisUpdate.Equal(now) || !crl.NextUpdate.Equal(now.Add(24*time.Hour)) {
		t.Errorf("number %v, thisUpdate %s, nextUpdate %s", crl.Number, crl.ThisUpdate, crl.NextUpdate)
	}
	if len(crl.RevokedCertificateEntries) != 3 {
		t.Fatalf("%d entries, want 3 (duplicate dropped)", len(crl.RevokedCertificateEntries))
	}
	want := map[string]struct {
		reason int
		at     time.Time
	}{
		a.SerialHex: {ReasonKeyCompromise, now.Add(-time.Hour)},
		b.SerialHex: {ReasonSuperseded, now.Add(-2 * time.Hour)},
		c.SerialHex: {ReasonUnspecified, now.Add(-3 * time.Hour)},
	}
	for _, e := range crl.RevokedCertificateEntries {
		w, ok := want[SerialHex(e.SerialNumber)]
		if !ok {
			t.Errorf("unexpected serial %s", SerialHex(e.SerialNumber))
			continue
		}
		if e.ReasonCode != w.reason || !e.RevocationTime.Equal(w.at) {
			t.Errorf("serial %s: reason %d at %s, want %d at %s", SerialHex(e.SerialNumber), e.ReasonCode, e.RevocationTime, w.reason, w.at)
		}
	}

	// Empty CRL is valid too.
	if der, err := f.issuer.CRL(ctx, nil, big.NewInt(0), time.Hour); err != nil {
		t.Error(err)
	} else if _, err := x509.ParseRevocationList(der); err != nil {
		t.Error(err)
	}

	// Bad input.
	for name, fn := range map[string]func() error{
		"nil number":      func() error { _, err := f.issuer.CRL(ctx, nil, nil, time.Hour); return err },
		"negative number": func() error { _, err := f.issuer.CRL(ctx, nil, big.NewInt(-1), time.Hour); return err },
		"zero next":       func() error { _, err := f.issuer.CRL(ctx, nil, big.NewInt(1), 0); return err },
		"bad serial": func() error {
			_, err := f.issuer.CRL(ctx, []RevokedCert{{SerialHex: "zz", RevokedAt: now}}, big.NewInt(1), time.Hour)
			return err
		},
		"no time": func() error {
			_, err := f.issuer.CRL(ctx, []RevokedCert{{SerialHex: a.SerialHex}}, big.NewInt(1), time.Hour)
			return err
		},
	} {
		if err := fn(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestReasonCode(t *testing.T) {
	for in, want := range map[string]int{
		"keyCompromise":        ReasonKeyCompromise,
		"key_compromise":       ReasonKeyCompromise,
		"Key Compromise":       ReasonKeyCompromise,
		"superseded":           ReasonSuperseded,
		"cessationOfOperation": ReasonCessationOfOperation,
		"affiliation-changed":  ReasonAffiliationChanged,
		"":                     ReasonUnspecified,
		"lost laptop":          ReasonUnspecified,
		"caCompromise":         ReasonUnspecified,
	} {
		if got := ReasonCode(in); got != want {
			t.Errorf("ReasonCode(%q) = %d, want %d", in, got, want)
		}
	}
}

// TestCRLChainCoversEveryLevel checks that after a rotation there is a CRL
// from each intermediate whose leaves may be in use, and one from the root
// for the root→intermediate level, as terminators that check every level of
// a chain (nginx ssl_crl, openssl -crl_check_all) need.
func TestCRLChainCoversEveryLevel(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	old := f.issue(t, Request{ClientID: "p1", Role: RoleProxy})
	i1 := parseCerts(t, old.ChainPEM)[1]
	f.clock.Set(i1.NotAfter.Add(-399 * day))
	i2 := parseCerts(t, f.issue(t, Request{ClientID: "p2", Role: RoleProxy}).ChainPEM)[1]
	if i2.Equal(i1) {
		t.Fatal("the intermediate was not rotated")
	}

	revoked := []RevokedCert{{SerialHex: old.SerialHex, RevokedAt: f.clock.Now(), Reason: "keyCompromise"}}
	ders, err := f.issuer.CRLChain(ctx, revoked, big.NewInt(7), day)
	if err != nil {
		t.Fatal(err)
	}
	signers := []*x509.Certificate{i2, i1, f.root}
	if len(ders) != len(signers) {
		t.Fatalf("%d CRLs, want %d (current, archived, root)", len(ders), len(signers))
	}
	for n, der := range ders {
		crl, err := x509.ParseRevocationList(der)
		if err != nil {
			t.Fatal(err)
		}
		if err := crl.CheckSignatureFrom(signers[n]); err != nil {
			t.Errorf("CRL %d is not signed by %s: %v", n, signers[n].Subject.CommonName, err)
		}
		want := 1
		if signers[n] == f.root {
			want = 0 // no intermediate is ever revoked
		}
		if len(crl.RevokedCertificateEntries) != want {
			t.Errorf("CRL %d signed by %s lists %d certificates, want %d", n, signers[n].Subject.CommonName,
				len(crl.RevokedCertificateEntries), want)
		}
		if crl.Number.Int64() != 7 || !crl.NextUpdate.Equal(crl.ThisUpdate.Add(day)) {
			t.Errorf("CRL %d: number %v, thisUpdate %s, nextUpdate %s", n, crl.Number, crl.ThisUpdate, crl.NextUpdate)
		}
	}
}
