package clientca

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
)

func TestBadClientIDAndRoleRefused(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name, id, role, want string
	}{
		{"empty id", "", RoleProxy, "client id"},
		{"65 chars", strings.Repeat("a", 65), RoleProxy, "client id"},
		{"space", "a b", RoleProxy, "client id"},
		{"slash", "a/b", RoleProxy, "client id"},
		{"non-ascii", "prüfer", RoleProxy, "client id"},
		{"newline", "p1\nadmin", RoleProxy, "client id"},
		{"nul", "p1\x00", RoleProxy, "client id"},
		{"dn injection", "p1,OU=worker", RoleProxy, "client id"},
		{"empty role", "p1", "", "role"},
		{"admin role", "p1", "admin", "role"},
		{"capitalised role", "p1", "Proxy", "role"},
		{"padded role", "p1", "proxy ", "role"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.issuer.Issue(ctx, Request{ClientID: tc.id, Role: tc.role})
			if !errors.Is(err, ErrInvalidRequest) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrInvalidRequest about %s", err, tc.want)
			}
			if tc.id != "" && tc.want == "client id" && strings.Contains(err.Error(), tc.id) {
				t.Error("error echoes an invalid client id")
			}
		})
	}
	// Boundaries that are allowed.
	for _, id := range []string{"a", strings.Repeat("Z", 64), "proxy_1.eu-west"} {
		if _, err := f.issuer.Issue(ctx, Request{ClientID: id, Role: RoleWorker, Lifetime: day}); err != nil {
			t.Errorf("client id %q refused: %v", id, err)
		}
	}
}

func TestLifetimeLimits(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, lt := range []time.Duration{401 * day, 400*day + time.Second, 30 * time.Second, -day} {
		_, err := f.issuer.Issue(ctx, Request{ClientID: "p1", Role: RoleProxy, Lifetime: lt})
		if !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("lifetime %s: err = %v, want ErrInvalidRequest", lt, err)
		}
	}
	iss, err := f.issuer.Issue(ctx, Request{ClientID: "p1", Role: RoleProxy, Lifetime: 400 * day})
	if err != nil {
		t.Fatalf("lifetime of exactly MaxLeafLifetime refused: %v", err)
	}
	if got := iss.Certificate.NotAfter.Sub(f.clock.Now().Truncate(time.Second)); got != 400*day {
		t.Errorf("lifetime = %s, want 400 days (not clamped)", got)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	st := newStorage(t)
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no storage", Config{CAID: "local"}},
		{"no id", Config{Storage: st}},
		{"id sanitises to nothing", Config{CAID: "///", Storage: st}},
		{"intermediate too short", Config{CAID: "local", Storage: st, IntermediateLifetime: 500 * day}},
		{"max leaf too short", Config{CAID: "local", Storage: st, MaxLeafLifetime: time.Second}},
	} {
		if _, err := New(tc.cfg); err == nil {
			t.Errorf("%s: New succeeded", tc.name)
		}
	}
	iss, err := New(Config{CAID: "Local", Storage: st})
	if err != nil {
		t.Fatal(err)
	}
	if iss.cfg.MaxLeafLifetime != 400*day || iss.cfg.IntermediateLifetime != 5*365*day || iss.cfg.Name != "Caddy Local Authority" {
		t.Errorf("defaults not applied: %+v", iss.cfg)
	}
	if iss.keyIntermediateCert() != "msgbroker/client_ca/local/intermediate.crt" {
		t.Errorf("CA id not sanitised like Caddy does: %s", iss.keyIntermediateCert())
	}
}

func TestMissingRoot(t *testing.T) {
	ctx := context.Background()
	st := newStorage(t)
	clock := newClock(time.Now())
	// New must not need the root: Caddy may provision the pki app later.
	iss, err := New(Config{CAID: "local", Storage: st, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	_, err = iss.Issue(ctx, Request{ClientID: "p1", Role: RoleProxy})
	if !errors.Is(err, ErrNoRoot) || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "pki/authorities/local/root.crt") {
		t.Fatalf("err = %v, want ErrNoRoot naming root.crt", err)
	}

	writeCaddyRoot(t, st, "local", clock.Now().Add(-time.Hour), 10*365*day)
	if err := st.Delete(ctx, "pki/authorities/local/root.key"); err != nil {
		t.Fatal(err)
	}
	_, _, err = LoadRoot(ctx, st, "local")
	if !errors.Is(err, ErrNoRoot) || !strings.Contains(err.Error(), "pki/authorities/local/root.key") {
		t.Fatalf("LoadRoot err = %v, want ErrNoRoot naming root.key", err)
	}
	_, err = iss.Issue(ctx, Request{ClientID: "p1", Role: RoleProxy})
	if !errors.Is(err, ErrNoRoot) || !strings.Contains(err.Error(), "root.key") {
		t.Fatalf("Issue err = %v, want ErrNoRoot naming root.key", err)
	}

	// Once the pki app has written both, the same Issuer works: a
	// failed load is not cached.
	_, rootKey := writeCaddyRoot(t, st, "local", clock.Now().Add(-time.Hour), 10*365*day)
	iss2, err := iss.Issue(ctx, Request{ClientID: "p1", Role: RoleProxy})
	if err != nil {
		t.Fatal(err)
	}
	loaded, key, err := LoadRoot(ctx, st, "local")
	if err != nil {
		t.Fatal(err)
	}
	if !publicKeysEqual(key.Public(), rootKey.Public()) {
		t.Error("LoadRoot returned another key")
	}
	if err := verifyChain(t, iss2.ChainPEM, loaded, clock.Now()); err != nil {
		t.Error(err)
	}

	// A root key that does not belong to the root certificate.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherPEM, _ := certmagic.PEMEncodePrivateKey(other)
	if err := st.Store(ctx, "pki/authorities/local/root.key", otherPEM); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadRoot(ctx, st, "local"); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("mismatched root key: err = %v", err)
	}
}

func TestRootReplacedMakesNewIntermediate(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	first := f.issue(t, Request{ClientID: "p1", Role: RoleProxy})

	newRoot, _ := writeCaddyRoot(t, f.st, "local", f.clock.Now().Add(-30*time.Minute), 10*365*day)
	iss, err := f.newIssuer(t).Issue(ctx, Request{ClientID: "p1", Role: RoleProxy})
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyChain(t, iss.ChainPEM, newRoot, f.clock.Now()); err != nil {
		t.Errorf("leaf under the new root: %v", err)
	}
	if err := verifyChain(t, first.ChainPEM, newRoot, f.clock.Now()); err == nil {
		t.Error("leaf of the old root verifies against the new root")
	}
}

func TestDamagedIntermediateIsRepaired(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	first := f.issue(t, Request{ClientID: "p1", Role: RoleProxy})

	// An interrupted rotation: a new key was written, the certificate not.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherPEM, _ := certmagic.PEMEncodePrivateKey(other)
	if err := f.st.Store(ctx, "msgbroker/client_ca/local/intermediate.key", otherPEM); err != nil {
		t.Fatal(err)
	}
	iss, err := f.newIssuer(t).Issue(ctx, Request{ClientID: "p2", Role: RoleProxy})
	if err != nil {
		t.Fatalf("Issue with a mismatched stored pair: %v", err)
	}
	if parseCerts(t, iss.ChainPEM)[1].Equal(parseCerts(t, first.ChainPEM)[1]) {
		t.Error("mismatched intermediate still in use")
	}
	if err := verifyChain(t, iss.ChainPEM, f.root, f.clock.Now()); err != nil {
		t.Error(err)
	}
	if err := verifyChain(t, first.ChainPEM, f.root, f.clock.Now()); err != nil {
		t.Errorf("repair invalidated an earlier leaf: %v", err)
	}
}

// failingStorage is real file storage whose Load of one key fails the way a
// remote storage does during an outage.
type failingStorage struct {
	certmagic.Storage
	failKey string
}

func (s failingStorage) Load(ctx context.Context, key string) ([]byte, error) {
	if key == s.failKey {
		return nil, errors.New("connection refused")
	}
	return s.Storage.Load(ctx, key)
}

func TestStorageErrorNeverReplacesIntermediate(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.issue(t, Request{ClientID: "p1", Role: RoleProxy})
	before, err := f.st.Load(ctx, "msgbroker/client_ca/local/intermediate.crt")
	if err != nil {
		t.Fatal(err)
	}

	st := failingStorage{Storage: f.st, failKey: "msgbroker/client_ca/local/intermediate.key"}
	iss, err := New(Config{CAID: "local", Storage: st, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := iss.Issue(ctx, Request{ClientID: "p2", Role: RoleProxy}); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("err = %v, want the storage error", err)
	}
	after, err := f.st.Load(ctx, "msgbroker/client_ca/local/intermediate.crt")
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != string(after) {
		t.Error("a storage error caused the intermediate to be replaced")
	}
}

func TestIdentityOf(t *testing.T) {
	role := func(r string) *url.URL { u, _ := url.Parse(RoleURIPrefix + r); return u }
	other, _ := url.Parse("spiffe://example.org/p1")
	for _, tc := range []struct {
		name     string
		cert     *x509.Certificate
		id, role string // empty role: error expected
	}{
		{"uri and ou", &x509.Certificate{Subject: pkix.Name{CommonName: "p1", OrganizationalUnit: []string{"proxy"}}, URIs: []*url.URL{role("proxy")}}, "p1", "proxy"},
		{"uri only", &x509.Certificate{Subject: pkix.Name{CommonName: "w1"}, URIs: []*url.URL{other, role("worker")}}, "w1", "worker"},
		{"ou fallback", &x509.Certificate{Subject: pkix.Name{CommonName: "w1", OrganizationalUnit: []string{"Ops", "worker"}}}, "w1", "worker"},
		{"disagree", &x509.Certificate{Subject: pkix.Name{CommonName: "p1", OrganizationalUnit: []string{"worker"}}, URIs: []*url.URL{role("proxy")}}, "", ""},
		{"two uris", &x509.Certificate{Subject: pkix.Name{CommonName: "p1"}, URIs: []*url.URL{role("proxy"), role("worker")}}, "", ""},
		{"two ous", &x509.Certificate{Subject: pkix.Name{CommonName: "p1", OrganizationalUnit: []string{"proxy", "worker"}}}, "", ""},
		{"unknown uri role", &x509.Certificate{Subject: pkix.Name{CommonName: "p1"}, URIs: []*url.URL{role("admin")}}, "", ""},
		// The prefix alone names an empty role: refused, not skipped in favour of the OU.
		{"empty uri role", &x509.Certificate{Subject: pkix.Name{CommonName: "p1", OrganizationalUnit: []string{"proxy"}}, URIs: []*url.URL{role("")}}, "", ""},
		{"no role", &x509.Certificate{Subject: pkix.Name{CommonName: "p1", OrganizationalUnit: []string{"admin"}}}, "", ""},
		{"bad cn", &x509.Certificate{Subject: pkix.Name{CommonName: "p 1"}, URIs: []*url.URL{role("proxy")}}, "", ""},
		{"empty cn", &x509.Certificate{URIs: []*url.URL{role("proxy")}}, "", ""},
		{"ca", &x509.Certificate{IsCA: true, Subject: pkix.Name{CommonName: "p1"}, URIs: []*url.URL{role("proxy")}}, "", ""},
		{"nil", nil, "", ""},
	} {
		id, r, err := IdentityOf(tc.cert)
		if tc.role == "" {
			if err == nil {
				t.Errorf("%s: IdentityOf = (%q, %q), want error", tc.name, id, r)
			}
			continue
		}
		if err != nil || id != tc.id || r != tc.role {
			t.Errorf("%s: IdentityOf = (%q, %q, %v), want (%q, %q)", tc.name, id, r, err, tc.id, tc.role)
		}
	}
}

func TestSerialHex(t *testing.T) {
	n, _ := ParseSerialHex("00:AB:cd:01")
	if SerialHex(n) != "abcd01" {
		t.Errorf("canonical form = %q", SerialHex(n))
	}
	for _, in := range []string{"abcd01", "ABCD01", "0xabcd01", "0000abcd01", "ab cd 01"} {
		m, err := ParseSerialHex(in)
		if err != nil || m.Cmp(n) != 0 {
			t.Errorf("ParseSerialHex(%q) = %v, %v", in, m, err)
		}
	}
	for _, in := range []string{"", "0", "00", "xyz", "-1", "+1", "1_0", strings.Repeat("f", 41), strings.Repeat("1", 65)} {
		if _, err := ParseSerialHex(in); err == nil {
			t.Errorf("ParseSerialHex(%q) succeeded", in)
		}
	}
	if SerialHex(nil) != "" {
		t.Error("SerialHex(nil) not empty")
	}
}

func TestNoKeyMaterialInStrings(t *testing.T) {
	f := newFixture(t)
	iss := f.issue(t, Request{ClientID: "p1", Role: RoleProxy})
	block := strings.TrimSpace(string(iss.PrivateKeyPEM))
	keyB64 := strings.Split(block, "\n")[1] // first base64 line of the key
	for _, s := range []string{
		fmt.Sprint(iss), fmt.Sprint(*iss), fmt.Sprintf("%+v", *iss), fmt.Sprintf("%#v", *iss), fmt.Sprintf("%#v", iss),
		fmt.Sprint(f.issuer), fmt.Sprintf("%+v", f.issuer), fmt.Sprintf("%#v", f.issuer),
	} {
		if strings.Contains(s, "PRIVATE KEY") || strings.Contains(s, keyB64) || strings.Contains(s, "PrivateKeyPEM") {
			t.Errorf("formatted value reveals key material: %.120s", s)
		}
	}
	if !strings.Contains(iss.String(), iss.SerialHex) {
		t.Error("String does not identify the certificate")
	}

	// A client that posts its private key instead of a CSR must not get
	// it echoed back.
	_, err := f.issuer.Issue(context.Background(), Request{ClientID: "p1", Role: RoleProxy, CSRPEM: iss.PrivateKeyPEM})
	if !errors.Is(err, ErrBadCSR) || strings.Contains(err.Error(), keyB64) {
		t.Errorf("err = %v", err)
	}
}

func TestStorageKeysMirrorCaddy(t *testing.T) {
	if got := path.Join(pkiPrefix(certmagic.StorageKeys.Safe("Local")), "root.crt"); got != "pki/authorities/local/root.crt" {
		t.Errorf("root key = %s", got)
	}
}
