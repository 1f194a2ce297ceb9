package sqlstorage_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/msgbroker/caddy-msgbroker/internal/testcaddy"
	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

// site is a gateway with a local CA and an HTTPS site, so that Caddy's pki
// app and its certificate automation both write to the storage.
func site(dir string, httpsPort int) string {
	return fmt.Sprintf(`{
	msgbroker {
		database sqlite %s
		dev_keys %s
	}
}

https://localhost:%d {
	tls internal
	msgbroker_health
}
`, filepath.Join(dir, "broker.db"), filepath.Join(dir, "secrets"), httpsPort)
}

// withStorage replaces the storage of an adapted config with ours.
func withStorage(t *testing.T, cfgJSON []byte, storageJSON string) []byte {
	t.Helper()
	var cfg map[string]any
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		t.Fatal(err)
	}
	var st any
	if err := json.Unmarshal([]byte(storageJSON), &st); err != nil {
		t.Fatal(err)
	}
	cfg["storage"] = st
	out, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCaddyKeepsItsCAAndCertificatesInTheDatabase loads a config whose
// storage is a SQLite database of its own: the pki CA and the site's
// certificate end up in its certmagic_data, none in the file storage the
// test harness names by default, and the site serves with it.
func TestCaddyKeepsItsCAAndCertificatesInTheDatabase(t *testing.T) {
	dir := t.TempDir()
	port := testcaddy.FreePort(t)
	srv := testcaddy.Start(t, "{\n}\n")
	cfg, err := srv.Adapt(site(dir, port))
	if err != nil {
		t.Fatal(err)
	}
	// The harness's first config (skip_install_trust) made a CA in its
	// file storage; ours must add nothing there.
	before := files(t, srv.StorageDir)
	certDB := filepath.Join(dir, "certs.db")
	cfg = withStorage(t, cfg, fmt.Sprintf(`{"module":"msgbroker_sql","database":{"driver":"sqlite","dsn":%q},"lock_ttl":"5s"}`, certDB))
	if err := srv.PostLoad(cfg); err != nil {
		t.Fatal(err)
	}

	db, err := storage.Open(context.Background(), storage.Config{Driver: storage.DriverSQLite, DSN: certDB})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	store := storage.New(db)
	root, err := store.CertData.Get(context.Background(), "pki/authorities/local/root.crt")
	if err != nil || !strings.Contains(string(root.Value), "BEGIN CERTIFICATE") {
		t.Fatalf("the CA root is not in the database: %v", err)
	}
	// Caddy obtains the site's certificate in the background.
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := store.CertData.Get(context.Background(), "certificates/local/localhost/localhost.crt")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the site's certificate is not in the database: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if after := files(t, srv.StorageDir); !slices.Equal(after, before) {
		t.Errorf("the file storage was written to: %v, before %v", after, before)
	}

	client := trusting(t, root.Value)
	// Stored a moment before it is cached for handshakes.
	var resp *http.Response
	for {
		resp, err = client.Get(fmt.Sprintf("https://localhost:%d/health", port))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the site does not serve with the certificate from the database: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/health = %d", resp.StatusCode)
	}
}

// TestAnUnmigratedMySQLDatabaseIsRefusedWithTheFix: auto_migrate is off
// for mysql, as in production; the load fails naming the command to run,
// not with the pki app's "table doesn't exist".
func TestAnUnmigratedMySQLDatabaseIsRefusedWithTheFix(t *testing.T) {
	dsn := storagetest.MySQL(t)
	dir := t.TempDir()
	srv := testcaddy.Start(t, "{\n}\n")
	cfg, err := srv.Adapt(site(dir, testcaddy.FreePort(t)))
	if err != nil {
		t.Fatal(err)
	}
	bad := withStorage(t, cfg, fmt.Sprintf(`{"module":"msgbroker_sql","database":{"driver":"mysql","dsn":%q}}`, dsn))
	err = srv.PostLoad(bad)
	if err == nil || !strings.Contains(err.Error(), "the database schema has 7 pending migration(s); apply them with 'caddy msgbroker migrate up', or set auto_migrate on") {
		t.Fatalf("load on an unmigrated database: %v", err)
	}
	good := withStorage(t, cfg, fmt.Sprintf(`{"module":"msgbroker_sql","database":{"driver":"mysql","dsn":%q,"auto_migrate":true}}`, dsn))
	if err := srv.PostLoad(good); err != nil {
		t.Fatalf("load with auto_migrate: %v", err)
	}
}

func TestConfigMistakesAreRefused(t *testing.T) {
	srv := testcaddy.Start(t, "{\n}\n")
	cfg, err := srv.Adapt("{\n}\n")
	if err != nil {
		t.Fatal(err)
	}
	for storageJSON, want := range map[string]string{
		`{"module":"msgbroker_sql"}`: "msgbroker_sql storage: the database setting is required",
		`{"module":"msgbroker_sql","database":{"driver":"sqlite","dsn":"x.db"},"lock_ttl":"2.9s"}`: "msgbroker_sql storage: lock_ttl must be at least 3s, got 2.9s",
		`{"module":"msgbroker_sql","database":{"driver":"postgres","dsn":"x"}}`:                    "database: driver must be sqlite or mysql",
		`{"module":"msgbroker_sql","database":{"driver":"mysql","dsn":" "}}`:                       "database: mysql needs a DSN",
	} {
		err := srv.PostLoad(withStorage(t, cfg, storageJSON))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", storageJSON, err, want)
		}
	}
}

// trusting is an HTTPS client that trusts rootPEM alone.
func trusting(t *testing.T, rootPEM []byte) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(rootPEM) {
		t.Fatal("the root is not PEM")
	}
	transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	t.Cleanup(transport.CloseIdleConnections)
	return &http.Client{Transport: transport, Timeout: 10 * time.Second}
}

// files lists the files under dir.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
