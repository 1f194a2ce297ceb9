package broker_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/storage"
)

// TestCertificateListFiltersAndPages: the admin list of certificates,
// newest first, by state (an active certificate past its end is
// "expired"), client, and end within a window of days or hours, in pages
// whose cursor is bound to the query that issued it.
func TestCertificateListFiltersAndPages(t *testing.T) {
	f := newCertsFixture(t, false)
	f.certs.CursorKey = []byte(strings.Repeat("k", 32))
	ctx := context.Background()
	now := time.Now().UTC()
	rows := []struct {
		client, status string
		notAfter       time.Time
	}{
		{"proxy-1", storage.ClientActive, now.Add(10 * 24 * time.Hour)},
		{"proxy-2", storage.ClientActive, now.Add(100 * 24 * time.Hour)},
		{"proxy-1", storage.ClientRevoked, now.Add(50 * 24 * time.Hour)},
		{"worker-1", storage.ClientActive, now.Add(-time.Hour)},
	}
	var serials []string
	for i, r := range rows {
		serial := fmt.Sprintf("%x", i+0xa0)
		serials = append(serials, serial)
		if err := f.store.Clients.Insert(ctx, &storage.Client{
			ClientID: r.client, SerialNumber: serial, FingerprintSHA256: fmt.Sprintf("%064d", i),
			Role: storage.ClientRoleProxy, Status: r.status, Subject: "CN=" + r.client, NotAfter: r.notAfter, CreatedBy: "test",
		}); err != nil {
			t.Fatal(err)
		}
	}
	list := func(q broker.CertificateQuery) ([]string, broker.CertificatePage) {
		t.Helper()
		page, err := f.certs.List(ctx, q)
		if err != nil {
			t.Fatalf("List(%+v): %v", q, err)
		}
		var got []string
		for _, it := range page.Items {
			got = append(got, it.Serial)
		}
		return got, page
	}
	s := serials
	for _, tc := range []struct {
		q    broker.CertificateQuery
		want []string
	}{
		{broker.CertificateQuery{}, []string{s[3], s[2], s[1], s[0]}},
		{broker.CertificateQuery{Status: "active"}, []string{s[1], s[0]}},
		{broker.CertificateQuery{Status: "revoked"}, []string{s[2]}},
		{broker.CertificateQuery{Status: "expired"}, []string{s[3]}},
		{broker.CertificateQuery{ClientID: "proxy-1"}, []string{s[2], s[0]}},
		{broker.CertificateQuery{ExpiringWithin: "11d"}, []string{s[0]}},
		{broker.CertificateQuery{ExpiringWithin: "264h"}, []string{s[0]}},
		{broker.CertificateQuery{ExpiringWithin: "3650d"}, []string{s[1], s[0]}},
		{broker.CertificateQuery{ExpiringWithin: "87600h"}, []string{s[1], s[0]}},
	} {
		if got, page := list(tc.q); !slices.Equal(got, tc.want) || page.NextCursor != "" {
			t.Errorf("List(%+v) = %v (cursor %q), want %v", tc.q, got, page.NextCursor, tc.want)
		}
	}
	_, all := list(broker.CertificateQuery{})
	if st := []string{all.Items[0].Status, all.Items[1].Status, all.Items[3].Status}; !slices.Equal(st, []string{"expired", "revoked", "active"}) {
		t.Errorf("statuses %v, want expired, revoked, active", st)
	}

	first, page := list(broker.CertificateQuery{Limit: "3", Caller: "admin"})
	if !slices.Equal(first, []string{s[3], s[2], s[1]}) || page.NextCursor == "" {
		t.Fatalf("first page of 3 = %v, cursor %q", first, page.NextCursor)
	}
	rest, last := list(broker.CertificateQuery{Limit: "3", Caller: "admin", Cursor: page.NextCursor})
	if !slices.Equal(rest, []string{s[0]}) || last.NextCursor != "" {
		t.Fatalf("second page = %v, cursor %q", rest, last.NextCursor)
	}
	for _, q := range []broker.CertificateQuery{
		{Limit: "2", Caller: "admin", Cursor: page.NextCursor},
		{Limit: "3", Caller: "someone else", Cursor: page.NextCursor},
		{Limit: "3", Caller: "admin", Status: "active", Cursor: page.NextCursor},
		{Limit: "3", Caller: "admin", Cursor: page.NextCursor + "A"},
	} {
		_, err := f.certs.List(ctx, q)
		wantKind(t, err, apperr.Invalid, "invalid_cursor")
	}

	for q, code := range map[broker.CertificateQuery]string{
		{Status: "gone"}:              "invalid_status",
		{ClientID: "bad id"}:          "invalid_client_id",
		{Limit: "0"}:                  "invalid_limit",
		{Limit: "201"}:                "invalid_limit",
		{ExpiringWithin: "0d"}:        "invalid_expiring_within",
		{ExpiringWithin: "3651d"}:     "invalid_expiring_within",
		{ExpiringWithin: "0h"}:        "invalid_expiring_within",
		{ExpiringWithin: "-1h"}:       "invalid_expiring_within",
		{ExpiringWithin: "87601h"}:    "invalid_expiring_within",
		{ExpiringWithin: "soon"}:      "invalid_expiring_within",
		{ExpiringWithin: "d"}:         "invalid_expiring_within",
		{ExpiringWithin: "1.5d"}:      "invalid_expiring_within",
		{ExpiringWithin: "2w"}:        "invalid_expiring_within",
		{Status: "active", Limit: ""}: "",
	} {
		_, err := f.certs.List(ctx, q)
		if code == "" {
			if err != nil {
				t.Errorf("List(%+v) = %v", q, err)
			}
			continue
		}
		wantKind(t, err, apperr.Invalid, code)
	}
}

// TestCRLDocumentFormats: DER by default, PEM on request, and with
// chain=full a PEM bundle of one CRL per level (the intermediate's, then
// the root's), each listing the revoked certificate where it applies;
// other formats and chains are refused.
func TestCRLDocumentFormats(t *testing.T) {
	f := newCertsFixture(t, true)
	ctx := context.Background()
	row := f.issue(t, "proxy-1", storage.ClientRoleProxy)
	if _, err := f.certs.Revoke(ctx, testActor, row.SerialNumber, "lost"); err != nil {
		t.Fatal(err)
	}
	lists := func(crl *x509.RevocationList) bool {
		for _, e := range crl.RevokedCertificateEntries {
			if fmt.Sprintf("%x", e.SerialNumber) == row.SerialNumber {
				return true
			}
		}
		return false
	}

	for _, format := range []string{"", "der"} {
		body, ctype, err := f.certs.CRLDocument(ctx, format, "")
		if err != nil || ctype != "application/pkix-crl" {
			t.Fatalf("format %q: %s, %v", format, ctype, err)
		}
		crl, err := x509.ParseRevocationList(body)
		if err != nil || !lists(crl) {
			t.Fatalf("format %q: the DER CRL does not list the revoked certificate: %v", format, err)
		}
	}

	for _, tc := range []struct{ format, chain string }{{"pem", ""}, {"", "full"}, {"pem", "full"}} {
		body, ctype, err := f.certs.CRLDocument(ctx, tc.format, tc.chain)
		if err != nil || ctype != "application/x-pem-file" {
			t.Fatalf("%+v: %s, %v", tc, ctype, err)
		}
		var crls []*x509.RevocationList
		for {
			var block *pem.Block
			if block, body = pem.Decode(body); block == nil {
				break
			}
			crl, err := x509.ParseRevocationList(block.Bytes)
			if block.Type != "X509 CRL" || err != nil {
				t.Fatalf("%+v: block %q: %v", tc, block.Type, err)
			}
			crls = append(crls, crl)
		}
		want := 1
		if tc.chain == "full" {
			want = 2
		}
		if len(crls) != want || !lists(crls[0]) || len(body) != 0 {
			t.Fatalf("%+v: %d CRLs (want %d), the first listing the revoked certificate: %v", tc, len(crls), want, len(crls) > 0 && lists(crls[0]))
		}
		if want == 2 && lists(crls[1]) {
			t.Errorf("%+v: the root's CRL lists a leaf", tc)
		}
	}

	for _, tc := range []struct{ format, chain, code string }{
		{"der", "full", "invalid_format"},
		{"xml", "", "invalid_format"},
		{"PEM", "", "invalid_format"},
		{"", "partial", "invalid_chain"},
		{"pem", "FULL", "invalid_chain"},
	} {
		_, _, err := f.certs.CRLDocument(ctx, tc.format, tc.chain)
		wantKind(t, err, apperr.Invalid, tc.code)
	}
}

// TestCRLTakesTheRecordedRevocationTimeAndReason: a CRL entry carries the
// revocation time and reason recorded with the certificate, not the time
// its row was last written.
func TestCRLTakesTheRecordedRevocationTimeAndReason(t *testing.T) {
	f := newCertsFixture(t, true)
	ctx := context.Background()
	revokedAt := time.Now().UTC().Add(-48 * time.Hour).Truncate(time.Second)
	reason := "keyCompromise"
	if err := f.store.Clients.Insert(ctx, &storage.Client{
		ClientID: "proxy-9", SerialNumber: "c0ffee", FingerprintSHA256: fmt.Sprintf("%064d", 9),
		Role: storage.ClientRoleProxy, Status: storage.ClientRevoked, Subject: "CN=proxy-9",
		NotAfter: time.Now().Add(24 * time.Hour), CreatedBy: "test", RevokedAt: &revokedAt, RevocationReason: &reason,
	}); err != nil {
		t.Fatal(err)
	}
	der, err := f.certs.CRL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if len(crl.RevokedCertificateEntries) != 1 {
		t.Fatalf("%d entries, want 1", len(crl.RevokedCertificateEntries))
	}
	e := crl.RevokedCertificateEntries[0]
	if fmt.Sprintf("%x", e.SerialNumber) != "c0ffee" || !e.RevocationTime.Equal(revokedAt) || e.ReasonCode != 1 {
		t.Fatalf("entry %x revoked at %s for reason %d, want c0ffee at %s for keyCompromise (1)", e.SerialNumber, e.RevocationTime, e.ReasonCode, revokedAt)
	}
}
