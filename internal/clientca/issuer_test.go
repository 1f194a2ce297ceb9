package clientca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
)

func TestIssueServerGeneratedKey(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	now := f.clock.Now().Truncate(time.Second)

	iss := f.issue(t, Request{ClientID: "proxy-01.eu", Role: RoleProxy})

	if err := verifyChain(t, iss.ChainPEM, f.root, now); err != nil {
		t.Fatalf("chain does not verify against the pki root: %v", err)
	}
	id, role, err := IdentityOf(iss.Certificate)
	if err != nil || id != "proxy-01.eu" || role != RoleProxy {
		t.Fatalf("IdentityOf = (%q, %q, %v), want (proxy-01.eu, proxy, nil)", id, role, err)
	}

	// The client certificate must not be usable as a server certificate.
	roots := x509.NewCertPool()
	roots.AddCert(f.root)
	inters := x509.NewCertPool()
	inters.AddCert(parseCerts(t, iss.ChainPEM)[1])
	if _, err := iss.Certificate.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, CurrentTime: now}); err == nil {
		t.Error("leaf verifies for server auth")
	}

	// PEM outputs.
	if certs := parseCerts(t, iss.CertificatePEM); len(certs) != 1 || !certs[0].Equal(iss.Certificate) {
		t.Error("CertificatePEM is not exactly the leaf")
	}
	chain := parseCerts(t, iss.ChainPEM)
	inter, interKey, err := f.issuer.Intermediate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) != 2 || !chain[0].Equal(iss.Certificate) || !chain[1].Equal(inter) {
		t.Error("ChainPEM is not leaf + client-issuing intermediate")
	}
	if ca := parseCerts(t, iss.CAPEM); len(ca) != 1 || !ca[0].Equal(f.root) {
		t.Error("CAPEM is not the pki root")
	}
	block, rest := pem.Decode(iss.PrivateKeyPEM)
	if block == nil || block.Type != "PRIVATE KEY" || len(rest) != 0 {
		t.Fatalf("PrivateKeyPEM is not a single PKCS#8 PRIVATE KEY block")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	ek, ok := key.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		t.Fatalf("generated key is %T, want ECDSA P-256", key)
	}
	if !ek.PublicKey.Equal(iss.Certificate.PublicKey) {
		t.Error("returned key does not match the certificate")
	}

	// Serial and fingerprint.
	leaf := iss.Certificate
	if leaf.SerialNumber.Sign() <= 0 || leaf.SerialNumber.BitLen() > 128 {
		t.Errorf("serial %s is not a positive 128-bit number", leaf.SerialNumber)
	}
	if iss.SerialHex != leaf.SerialNumber.Text(16) || iss.SerialHex != SerialHex(leaf.SerialNumber) {
		t.Errorf("SerialHex = %q, want %q", iss.SerialHex, leaf.SerialNumber.Text(16))
	}
	if len(iss.FingerprintSHA256) != 64 || iss.FingerprintSHA256 != strings.ToLower(iss.FingerprintSHA256) || iss.FingerprintSHA256 != Fingerprint(leaf) {
		t.Errorf("bad fingerprint %q", iss.FingerprintSHA256)
	}

	// Leaf profile.
	if leaf.IsCA || !leaf.BasicConstraintsValid {
		t.Error("leaf must carry BasicConstraints CA=false")
	}
	if leaf.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("leaf KeyUsage = %v, want DigitalSignature only", leaf.KeyUsage)
	}
	if len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Errorf("leaf ExtKeyUsage = %v, want ClientAuth only", leaf.ExtKeyUsage)
	}
	if !bytes.Equal(leaf.AuthorityKeyId, inter.SubjectKeyId) || len(leaf.AuthorityKeyId) == 0 {
		t.Error("leaf AuthorityKeyId does not name the intermediate")
	}
	if leaf.Subject.CommonName != "proxy-01.eu" || len(leaf.Subject.OrganizationalUnit) != 1 || leaf.Subject.OrganizationalUnit[0] != RoleProxy {
		t.Errorf("leaf subject = %v", leaf.Subject)
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "urn:msgbroker:role:proxy" {
		t.Errorf("leaf URIs = %v", leaf.URIs)
	}
	if !leaf.NotBefore.Equal(now.Add(-time.Minute)) || !leaf.NotAfter.Equal(now.Add(365*day)) {
		t.Errorf("leaf validity %s – %s, want now-1m – now+365d", leaf.NotBefore, leaf.NotAfter)
	}

	// Intermediate profile.
	if !inter.IsCA || !inter.BasicConstraintsValid || inter.MaxPathLen != 0 || !inter.MaxPathLenZero {
		t.Error("intermediate must be a CA with MaxPathLen 0")
	}
	if inter.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("intermediate KeyUsage = %v", inter.KeyUsage)
	}
	if len(inter.ExtKeyUsage) != 1 || inter.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Errorf("intermediate ExtKeyUsage = %v, want ClientAuth only", inter.ExtKeyUsage)
	}
	if want := fmt.Sprintf("Test CA Client Issuing CA %d", now.Year()); inter.Subject.CommonName != want {
		t.Errorf("intermediate CN = %q, want %q", inter.Subject.CommonName, want)
	}
	if !inter.NotAfter.Equal(now.Add(5 * 365 * day)) {
		t.Errorf("intermediate NotAfter = %s, want now+5y", inter.NotAfter)
	}
	if err := inter.CheckSignatureFrom(f.root); err != nil {
		t.Errorf("intermediate not signed by the root: %v", err)
	}
	if pk, ok := interKey.Public().(*ecdsa.PublicKey); !ok || pk.Curve != elliptic.P256() {
		t.Errorf("intermediate key is %T, want ECDSA P-256", interKey.Public())
	}

	// Storage layout.
	crtPEM, err := f.st.Load(ctx, "msgbroker/client_ca/local/intermediate.crt")
	if err != nil {
		t.Fatal(err)
	}
	if c := parseCerts(t, crtPEM); len(c) != 1 || !c[0].Equal(inter) {
		t.Error("stored intermediate.crt differs from the one in use")
	}
	keyPEM, err := f.st.Load(ctx, "msgbroker/client_ca/local/intermediate.key")
	if err != nil {
		t.Fatal(err)
	}
	storedKey, err := certmagic.PEMDecodePrivateKey(keyPEM)
	if err != nil || !publicKeysEqual(inter.PublicKey, storedKey.Public()) {
		t.Errorf("stored intermediate.key does not match: %v", err)
	}
}

func TestIssueFromCSR(t *testing.T) {
	f := newFixture(t)
	now := f.clock.Now()

	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384Key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)

	for _, tc := range []struct {
		name string
		key  crypto.Signer
		ku   x509.KeyUsage
	}{
		{"ecdsa-p256", ecKey, x509.KeyUsageDigitalSignature},
		{"ecdsa-p384", ec384Key, x509.KeyUsageDigitalSignature},
		{"rsa-2048", rsaKey, x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment},
		{"ed25519", edKey, x509.KeyUsageDigitalSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			iss := f.issue(t, Request{ClientID: "w-" + tc.name, Role: RoleProxy, CSRPEM: makeCSR(t, tc.key), Lifetime: 30 * day})
			leaf := iss.Certificate
			if !publicKeysEqual(tc.key.Public(), leaf.PublicKey) {
				t.Fatal("certificate does not carry the CSR's public key")
			}
			if iss.PrivateKeyPEM != nil {
				t.Error("PrivateKeyPEM must be nil for a CSR")
			}
			// The CSR asked for CN admin, OU worker/root, O Evil Corp, a DNS
			// name, a worker role URI and CA=true: none of it may appear.
			if leaf.Subject.CommonName != "w-"+tc.name {
				t.Errorf("CN = %q", leaf.Subject.CommonName)
			}
			if len(leaf.Subject.OrganizationalUnit) != 1 || leaf.Subject.OrganizationalUnit[0] != RoleProxy || len(leaf.Subject.Organization) != 0 {
				t.Errorf("subject = %v, want only CN and OU proxy", leaf.Subject)
			}
			if len(leaf.DNSNames) != 0 || len(leaf.URIs) != 1 || leaf.URIs[0].String() != RoleURIPrefix+RoleProxy {
				t.Errorf("SANs: DNS %v URIs %v", leaf.DNSNames, leaf.URIs)
			}
			if leaf.IsCA {
				t.Error("CSR's CA=true extension was copied")
			}
			if leaf.KeyUsage != tc.ku {
				t.Errorf("KeyUsage = %v, want %v", leaf.KeyUsage, tc.ku)
			}
			id, role, err := IdentityOf(leaf)
			if err != nil || id != "w-"+tc.name || role != RoleProxy {
				t.Errorf("IdentityOf = (%q, %q, %v)", id, role, err)
			}
			if err := verifyChain(t, iss.ChainPEM, f.root, now); err != nil {
				t.Errorf("chain does not verify: %v", err)
			}
		})
	}
}

func TestLeafLifetimeIsExact(t *testing.T) {
	f := newFixture(t)
	// A clock with sub-second precision: the lifetime counts from the
	// second of issuance, the resolution of X.509 times.
	f.clock.Set(f.clock.Now().Truncate(time.Second).Add(123456789 * time.Nanosecond))
	issuedAt := f.clock.Now().Truncate(time.Second)

	iss := f.issue(t, Request{ClientID: "p1", Role: RoleProxy, Lifetime: 365 * day})
	if got := iss.Certificate.NotAfter.Sub(issuedAt); got != 365*day {
		t.Fatalf("lifetime = %s, want exactly 365 days", got)
	}
	for _, tc := range []struct {
		at time.Duration
		ok bool
	}{
		{0, true},
		{364 * day, true},
		{365*day - time.Second, true},
		{365*day + time.Second, false},
	} {
		err := verifyChain(t, iss.ChainPEM, f.root, issuedAt.Add(tc.at))
		if (err == nil) != tc.ok {
			t.Errorf("verify at +%s: err = %v, want ok=%t", tc.at, err, tc.ok)
		}
	}
}

func TestRotationKeepsOldLeavesWorking(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	t0 := f.clock.Now().Truncate(time.Second)

	first := f.issue(t, Request{ClientID: "p1", Role: RoleProxy})
	i1, _, err := f.issuer.Intermediate(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// 401 days before I1 expires: 365 days still fit, no rotation yet.
	f.clock.Set(i1.NotAfter.Add(-401 * day))
	late := f.issue(t, Request{ClientID: "p2", Role: RoleProxy})
	lateAt := f.clock.Now().Truncate(time.Second)
	if got := parseCerts(t, late.ChainPEM)[1]; !got.Equal(i1) {
		t.Fatal("rotated before less than MaxLeafLifetime remained")
	}

	// Two days later less than 400 days remain: the next Issue rotates.
	f.clock.Advance(2 * day)
	rotAt := f.clock.Now().Truncate(time.Second)
	after := f.issue(t, Request{ClientID: "w1", Role: RoleWorker})
	i2 := parseCerts(t, after.ChainPEM)[1]
	if i2.Equal(i1) {
		t.Fatal("intermediate was not rotated")
	}
	if !i2.NotAfter.Equal(rotAt.Add(5 * 365 * day)) {
		t.Errorf("new intermediate NotAfter = %s, want %s", i2.NotAfter, rotAt.Add(5*365*day))
	}
	if err := i2.CheckSignatureFrom(f.root); err != nil {
		t.Fatalf("new intermediate not signed by the root: %v", err)
	}

	// Leaves of the old intermediate keep working with the chain their
	// holders stored, for their full lifetime.
	if err := verifyChain(t, first.ChainPEM, f.root, t0.Add(364*day)); err != nil {
		t.Errorf("first leaf at +364d after rotation: %v", err)
	}
	if err := verifyChain(t, late.ChainPEM, f.root, lateAt.Add(364*day)); err != nil {
		t.Errorf("leaf issued just before rotation, at +364d: %v", err)
	}
	if err := verifyChain(t, after.ChainPEM, f.root, rotAt.Add(364*day)); err != nil {
		t.Errorf("leaf of the new intermediate: %v", err)
	}

	// Storage: new current, old archived with its key.
	crt, _ := f.st.Load(ctx, "msgbroker/client_ca/local/intermediate.crt")
	if c := parseCerts(t, crt); len(c) != 1 || !c[0].Equal(i2) {
		t.Error("storage does not hold the new intermediate")
	}
	prevKey := "msgbroker/client_ca/local/previous/" + SerialHex(i1.SerialNumber)
	if !f.st.Exists(ctx, prevKey+".crt") || !f.st.Exists(ctx, prevKey+".key") {
		t.Error("old intermediate was not archived")
	}
	all, err := f.issuer.Intermediates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || !all[0].Equal(i2) || !all[1].Equal(i1) {
		t.Errorf("Intermediates = %d certs, want [new, old]", len(all))
	}

	// Another node starting now uses the rotated intermediate rather than
	// rotating again.
	other := f.newIssuer(t)
	cur, _, err := other.Intermediate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !cur.Equal(i2) {
		t.Error("a second issuer rotated again")
	}

	// A CRL for the old intermediate's leaves is still signed by it.
	der, err := f.issuer.CRLForIssuer(ctx, SerialHex(i1.SerialNumber), []RevokedCert{{SerialHex: late.SerialHex, RevokedAt: rotAt}}, big.NewInt(1), day)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(i1); err != nil {
		t.Errorf("CRL for the old issuer not signed by it: %v", err)
	}
	if _, err := f.issuer.CRLForIssuer(ctx, "abcdef", nil, big.NewInt(1), day); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("CRL for unknown issuer: err = %v, want fs.ErrNotExist", err)
	}
}

func TestRootNearExpiryRefusesRatherThanClamps(t *testing.T) {
	start := time.Now().UTC()
	st := newStorage(t)
	root, _ := writeCaddyRoot(t, st, "local", start.Add(-time.Hour), 300*day)
	clock := newClock(start)
	iss, err := New(Config{CAID: "local", Storage: st, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	_, err = iss.Issue(ctx, Request{ClientID: "p1", Role: RoleProxy, Lifetime: 365 * day})
	if !errors.Is(err, ErrInvalidRequest) || !strings.Contains(err.Error(), "intermediate expires") {
		t.Fatalf("365-day leaf under a root with 300 days left: err = %v, want ErrInvalidRequest", err)
	}
	ok, err := iss.Issue(ctx, Request{ClientID: "p1", Role: RoleProxy, Lifetime: 200 * day})
	if err != nil {
		t.Fatal(err)
	}
	if got := ok.Certificate.NotAfter.Sub(start.Truncate(time.Second)); got != 200*day {
		t.Errorf("lifetime = %s, want 200 days", got)
	}
	inter := parseCerts(t, ok.ChainPEM)[1]
	if !inter.NotAfter.Equal(root.NotAfter) {
		t.Errorf("intermediate NotAfter %s not clamped to root NotAfter %s", inter.NotAfter, root.NotAfter)
	}
	if want := "Caddy Local Authority Client Issuing CA"; !strings.HasPrefix(inter.Subject.CommonName, want) {
		t.Errorf("default-named intermediate CN = %q", inter.Subject.CommonName)
	}

	// Less than MaxLeafLifetime remains, but a new intermediate would not
	// live longer: no rotation, on this or any later call.
	clock.Advance(50 * day)
	again, err := iss.Issue(ctx, Request{ClientID: "p2", Role: RoleProxy, Lifetime: 100 * day})
	if err != nil {
		t.Fatal(err)
	}
	if !parseCerts(t, again.ChainPEM)[1].Equal(inter) {
		t.Error("intermediate rotated although the root expires first")
	}
	if keys, _ := st.List(ctx, "msgbroker/client_ca/local/previous", false); len(keys) != 0 {
		t.Errorf("archive not empty: %v", keys)
	}
}

func TestCaddyIntermediateRenewalDoesNotMatter(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	now := f.clock.Now()

	caddyInter := writeCaddyIntermediate(t, f.st, "local", f.root, f.rootKey, now, 7*day)
	iss := f.issue(t, Request{ClientID: "p1", Role: RoleProxy, Lifetime: 365 * day})
	leafIssuer := parseCerts(t, iss.ChainPEM)[1]
	if leafIssuer.Equal(caddyInter) || bytes.Equal(iss.Certificate.AuthorityKeyId, caddyInter.SubjectKeyId) {
		t.Fatal("leaf was signed by Caddy's intermediate")
	}

	// Caddy renews its intermediate (new key) a few times; its first one
	// expires after 7 days.
	for n := 1; n <= 3; n++ {
		renewAt := f.clock.Advance(6 * day)
		writeCaddyIntermediate(t, f.st, "local", f.root, f.rootKey, renewAt, 7*day)
	}
	at := f.clock.Now()
	if at.Before(caddyInter.NotAfter) {
		t.Fatal("test setup: Caddy's first intermediate should have expired")
	}
	if err := verifyChain(t, iss.ChainPEM, f.root, at); err != nil {
		t.Errorf("leaf stopped verifying after Caddy's intermediate renewals: %v", err)
	}
	if err := verifyChain(t, iss.ChainPEM, f.root, now.Add(364*day)); err != nil {
		t.Errorf("leaf at +364d: %v", err)
	}
	// And our intermediate is unaffected.
	cur, _, err := f.newIssuer(t).Intermediate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !cur.Equal(leafIssuer) {
		t.Error("client-issuing intermediate changed when Caddy's did")
	}
}

func TestConcurrentFirstIssueCreatesOneIntermediate(t *testing.T) {
	for round := 0; round < 5; round++ {
		f := newFixture(t)
		// Two "nodes": separate Issuers and separate FileStorage values
		// over the same directory, each with several goroutines.
		nodes := []*Issuer{f.issuer}
		st2 := &certmagic.FileStorage{Path: f.st.Path}
		n2, err := New(Config{CAID: "local", Name: "Test CA", Storage: st2, Now: f.clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, n2)

		const perNode = 4
		var (
			wg    sync.WaitGroup
			start = make(chan struct{})
			mu    sync.Mutex
			seen  = map[string]bool{}
			errs  []error
		)
		for _, node := range nodes {
			for g := 0; g < perNode; g++ {
				wg.Add(1)
				go func(node *Issuer, g int) {
					defer wg.Done()
					<-start
					iss, err := node.Issue(context.Background(), Request{ClientID: fmt.Sprintf("c%d", g), Role: RoleWorker})
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						errs = append(errs, err)
						return
					}
					seen[string(iss.Certificate.AuthorityKeyId)] = true
				}(node, g)
			}
		}
		close(start)
		wg.Wait()
		for _, err := range errs {
			t.Fatal(err)
		}
		if len(seen) != 1 {
			t.Fatalf("round %d: leaves were signed by %d different intermediates, want 1", round, len(seen))
		}
		keys, err := f.st.List(context.Background(), "msgbroker/client_ca/local", true)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if strings.Contains(k, "previous") {
				t.Fatalf("round %d: an intermediate was replaced: %v", round, keys)
			}
		}
	}
}
