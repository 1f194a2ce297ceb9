package msgbroker

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"
	"time"
)

func TestChainHealthRatesValidity(t *testing.T) {
	at := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	cert := func(cn string, from, to time.Time) *x509.Certificate {
		return &x509.Certificate{Subject: pkix.Name{CommonName: cn}, NotBefore: from, NotAfter: to}
	}
	root := cert("root", at.AddDate(-1, 0, 0), at.AddDate(9, 0, 0))
	cases := []struct {
		name  string
		root  *x509.Certificate
		chain []*x509.Certificate
		want  string
	}{
		{"valid", root, []*x509.Certificate{cert("inter", at.Add(-time.Hour), at.Add(6*24*time.Hour))}, Healthy},
		{"intermediate close to expiry", root, []*x509.Certificate{cert("inter", at.Add(-time.Hour), at.Add(2*time.Hour))}, Degraded},
		{"intermediate expired", root, []*x509.Certificate{cert("inter", at.Add(-48*time.Hour), at.Add(-time.Hour))}, Unhealthy},
		{"root expired", cert("root", at.AddDate(-2, 0, 0), at.Add(-time.Minute)), []*x509.Certificate{cert("inter", at.Add(-time.Hour), at.Add(48*time.Hour))}, Unhealthy},
		{"not yet valid", root, []*x509.Certificate{cert("inter", at.Add(time.Hour), at.Add(48*time.Hour))}, Unhealthy},
		{"no intermediate", root, nil, Unhealthy},
		{"no root", nil, []*x509.Certificate{cert("inter", at, at.Add(48*time.Hour))}, Unhealthy},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, detail := chainHealth(tc.root, tc.chain, at)
			if got != tc.want {
				t.Fatalf("chainHealth = %s (%s), want %s", got, detail, tc.want)
			}
			if got != Healthy && detail == "" {
				t.Error("a non-healthy state must say why")
			}
		})
	}
}
