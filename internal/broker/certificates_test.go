package broker_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/internal/clientca"
	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

// certsFixture is the certificate service over SQLite and a CA root
// stored as Caddy's pki app stores it.
type certsFixture struct {
	certs     *broker.Certificates
	store     *storage.Store
	announced []string
}

func newCertsFixture(t *testing.T, withRoot bool) *certsFixture {
	t.Helper()
	st := &certmagic.FileStorage{Path: t.TempDir()}
	if withRoot {
		storeRoot(t, st)
	}
	issuer, err := clientca.New(clientca.Config{CAID: "local", Storage: st})
	if err != nil {
		t.Fatal(err)
	}
	f := &certsFixture{store: storage.New(storagetest.OpenSQLite(t))}
	f.certs = &broker.Certificates{
		Store: f.store, Issuer: issuer,
		Announce: func(_ context.Context, serial string) { f.announced = append(f.announced, serial) },
		Issued:   prometheus.NewCounter(prometheus.CounterOpts{Name: "issued"}),
		Revoked:  prometheus.NewCounter(prometheus.CounterOpts{Name: "revoked"}),
	}
	return f
}

// storeRoot writes a self-signed P-256 root at pki/authorities/local/.
func storeRoot(t *testing.T, st certmagic.Storage) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	name := pkix.Name{CommonName: "Test Root"}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: name, Issuer: name,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true, IsCA: true, MaxPathLen: 1,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := certmagic.PEMEncodePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := st.Store(ctx, "pki/authorities/local/root.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})); err != nil {
		t.Fatal(err)
	}
	if err := st.Store(ctx, "pki/authorities/local/root.key", keyPEM); err != nil {
		t.Fatal(err)
	}
}

func (f *certsFixture) issue(t *testing.T, clientID, role string) *storage.Client {
	t.Helper()
	_, row, err := f.certs.Issue(context.Background(), testActor, broker.IssueRequest{ClientID: clientID, Role: role, Days: 30})
	if err != nil {
		t.Fatal(err)
	}
	return row
}

func TestIssueRecordsAnnouncesCountsAndAudits(t *testing.T) {
	f := newCertsFixture(t, true)
	issued, row, err := f.certs.Issue(context.Background(), testActor, broker.IssueRequest{ClientID: "proxy-1", Role: storage.ClientRoleProxy, Days: 30})
	if err != nil {
		t.Fatal(err)
	}
	if len(issued.PrivateKeyPEM) == 0 || issued.Certificate.Subject.CommonName != "proxy-1" {
		t.Fatalf("issued = %+v", issued)
	}
	if lifetime := issued.Certificate.NotAfter.Sub(issued.Certificate.NotBefore); lifetime < 30*24*time.Hour || lifetime > 31*24*time.Hour {
		t.Errorf("a 30-day certificate lives %s", lifetime)
	}
	stored, err := f.store.Clients.GetBySerial(context.Background(), issued.SerialHex)
	if err != nil || stored.ClientID != "proxy-1" || stored.Role != storage.ClientRoleProxy || stored.Status != storage.ClientActive ||
		stored.CreatedBy != testActor.Name || row.SerialNumber != issued.SerialHex {
		t.Fatalf("stored = %+v, %v", stored, err)
	}
	if !slices.Equal(f.announced, []string{issued.SerialHex}) || count(f.certs.Issued) != 1 {
		t.Errorf("announced %v, counted %v", f.announced, count(f.certs.Issued))
	}
	if a := lastAudit(t, f.store); a.Action != "certificate.issue" || a.Outcome != storage.AuditSuccess || a.Target != "proxy-1 serial "+issued.SerialHex {
		t.Errorf("audit = %+v", a)
	}
}

// TestIssueMapsBadRequestsToInvalid: a bad CSR, identity or lifetime is
// the caller's mistake (400), audited as a failure, and stores nothing; a
// CA that cannot sign is not (500).
func TestIssueMapsBadRequestsToInvalid(t *testing.T) {
	f := newCertsFixture(t, true)
	cases := []struct {
		name string
		req  broker.IssueRequest
		code string
	}{
		{"CSR not PEM", broker.IssueRequest{ClientID: "proxy-1", Role: "proxy", CSRPEM: []byte("not a CSR")}, "invalid_csr"},
		{"CSR of another PEM type", broker.IssueRequest{ClientID: "proxy-1", Role: "proxy", CSRPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}})}, "invalid_csr"},
		{"bad client id", broker.IssueRequest{ClientID: "proxy 1/..", Role: "proxy"}, "invalid_certificate_request"},
		{"bad role", broker.IssueRequest{ClientID: "proxy-1", Role: "admin"}, "invalid_certificate_request"},
		{"too long", broker.IssueRequest{ClientID: "proxy-1", Role: "proxy", Days: 100000}, "invalid_certificate_request"},
		{"negative days", broker.IssueRequest{ClientID: "proxy-1", Role: "proxy", Days: -1}, "invalid_days"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, row, err := f.certs.Issue(context.Background(), testActor, tc.req)
			wantKind(t, err, apperr.Invalid, tc.code)
			if row != nil {
				t.Fatalf("a refused request returned a row %+v", row)
			}
			if a := lastAudit(t, f.store); a.Action != "certificate.issue" || a.Outcome != storage.AuditFailure || a.Details == nil || !strings.HasPrefix(*a.Details, tc.code+": ") {
				t.Errorf("audit = %+v", a)
			}
		})
	}
	if rows, _ := f.store.Clients.ListFilter(context.Background(), "", ""); len(rows) != 0 || len(f.announced) != 0 || count(f.certs.Issued) != 0 {
		t.Fatalf("refused requests left %d rows, %d announcements", len(rows), len(f.announced))
	}

	noCA := newCertsFixture(t, false)
	_, _, err := noCA.certs.Issue(context.Background(), testActor, broker.IssueRequest{ClientID: "proxy-1", Role: "proxy"})
	if err == nil || apperr.KindOf(err) != apperr.Internal {
		t.Fatalf("issuing without a CA = %v, want an internal error", err)
	}
	if a := lastAudit(t, noCA.store); a.Outcome != storage.AuditFailure || *a.Details != "internal error" {
		t.Errorf("audit = %+v", a)
	}
}

func TestRevokeBySerialOrClient(t *testing.T) {
	f := newCertsFixture(t, true)
	ctx := context.Background()
	first, second := f.issue(t, "proxy-1", "proxy"), f.issue(t, "proxy-1", "proxy")
	other := f.issue(t, "worker-1", "worker")
	f.announced = nil

	// The serial as OpenSSL prints it: upper case, colons.
	n, _ := clientca.ParseSerialHex(first.SerialNumber)
	openssl := strings.ToUpper(strings.Join(splitPairs(n.Text(16)), ":"))
	revoked, err := f.certs.Revoke(ctx, testActor, " "+openssl+" ", " compromised ")
	if err != nil || len(revoked) != 1 || revoked[0].SerialNumber != first.SerialNumber || revoked[0].Status != storage.ClientRevoked ||
		*revoked[0].RevocationReason != "compromised" || revoked[0].RevokedAt == nil {
		t.Fatalf("revoke by serial = %+v, %v", revoked, err)
	}
	_, err = f.certs.Revoke(ctx, testActor, first.SerialNumber, "again")
	wantKind(t, err, apperr.Conflict, "already_revoked")

	revoked, err = f.certs.Revoke(ctx, testActor, "proxy-1", "retired")
	if err != nil || len(revoked) != 1 || revoked[0].SerialNumber != second.SerialNumber {
		t.Fatalf("revoke by client = %+v, %v (the revoked one must be skipped)", revoked, err)
	}
	_, err = f.certs.Revoke(ctx, testActor, "proxy-1", "again")
	wantKind(t, err, apperr.Conflict, "already_revoked")
	if got, _ := f.store.Clients.GetBySerial(ctx, other.SerialNumber); got.Status != storage.ClientActive {
		t.Fatal("revoking proxy-1 revoked worker-1")
	}
	if !slices.Equal(f.announced, []string{first.SerialNumber, second.SerialNumber}) || count(f.certs.Revoked) != 2 {
		t.Errorf("announced %v, counted %v", f.announced, count(f.certs.Revoked))
	}
	if a := lastAudit(t, f.store); a.Action != "certificate.revoke" || a.Outcome != storage.AuditFailure || a.Target != "proxy-1" {
		t.Errorf("audit = %+v", a)
	}

	for _, tc := range []struct{ target, reason, code string }{
		{"", "x", "missing_target"},
		{"proxy-1", " ", "missing_reason"},
		{"proxy-1", strings.Repeat("r", 256), "reason_too_long"},
		{"nobody", "x", "certificate_not_found"},
	} {
		_, err := f.certs.Revoke(ctx, testActor, tc.target, tc.reason)
		if e, ok := apperr.As(err); !ok || e.Code != tc.code {
			t.Errorf("Revoke(%q, %q) = %v, want %s", tc.target, tc.reason, err, tc.code)
		}
	}
	if _, err := f.certs.Revoke(ctx, testActor, "worker-1", strings.Repeat("r", 255)); err != nil {
		t.Errorf("a 255-character reason refused: %v", err)
	}

	der, err := f.certs.CRL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, e := range crl.RevokedCertificateEntries {
		listed = append(listed, clientca.SerialHex(e.SerialNumber))
	}
	slices.Sort(listed)
	want := []string{first.SerialNumber, second.SerialNumber, other.SerialNumber}
	slices.Sort(want)
	if !slices.Equal(listed, want) || crl.NextUpdate.Sub(crl.ThisUpdate) < broker.CRLValidity-time.Minute {
		t.Fatalf("CRL lists %v, want %v; valid %s", listed, want, crl.NextUpdate.Sub(crl.ThisUpdate))
	}
}

func count(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

func splitPairs(hex string) []string {
	if len(hex)%2 == 1 {
		hex = "0" + hex
	}
	var out []string
	for i := 0; i < len(hex); i += 2 {
		out = append(out, hex[i:i+2])
	}
	return out
}
