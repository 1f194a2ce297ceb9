package integration

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/msgbroker/caddy-msgbroker/internal/certstore"
	"github.com/msgbroker/caddy-msgbroker/internal/keyring"
	"github.com/msgbroker/caddy-msgbroker/internal/testcaddy"
	"github.com/msgbroker/caddy-msgbroker/storage"
)

// TestTwoNodesShareOneCAThroughTheSQLStorage runs two gateway processes
// with `storage msgbroker_sql` on one MariaDB database and nothing else in
// common but the keys: the first creates the pki CA in the database, the
// second uses it, the CLI issues a client certificate from it, and that
// certificate registers messages on both nodes. Neither node writes the
// CA to its own file storage, and the database holds no private key in the
// clear.
func TestTwoNodesShareOneCAThroughTheSQLStorage(t *testing.T) {
	e := newCLIEnv(t, storage.DriverMySQL)
	fileStorage := "storage file_system " + filepath.Join(e.dir, "caddy")
	sqlStorage := `storage msgbroker_sql {
		database mysql {env.MSGBROKER_CLI_DSN} {
			auto_migrate on
		}
		lock_ttl 5s
		encryption_key_file ` + e.keyringPath() + `
	}`
	base, err := os.ReadFile(e.caddyfile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(base), fileStorage) {
		t.Fatalf("the CLI test Caddyfile no longer names its file storage:\n%s", base)
	}
	clustered := strings.Replace(string(base), fileStorage, sqlStorage, 1)
	if err := os.WriteFile(e.caddyfile, []byte(clustered), 0o600); err != nil {
		t.Fatal(err)
	}
	db := func() *storage.Store { return e.db() }
	kr, err := keyring.Load(e.keyringPath())
	if err != nil {
		t.Fatal(err)
	}
	root := func() []byte {
		sealed := certstore.New(db().CertData, certstore.Options{Sealer: kr})
		value, err := sealed.Load(context.Background(), "pki/authorities/local/root.crt")
		if err != nil {
			return nil
		}
		return value
	}

	a := e.startNode("node-a", e.caddyfile, e.mtlsPort, e.env, root)

	// Node B: other ports and its own Caddy data directory, same database.
	bPort, bAdmin := testcaddy.FreePort(t), testcaddy.FreePort(t)
	bConfig := strings.NewReplacer(
		fmt.Sprintf("admin 127.0.0.1:%d", e.adminPort), fmt.Sprintf("admin 127.0.0.1:%d", bAdmin),
		fmt.Sprintf("https://localhost:%d", e.mtlsPort), fmt.Sprintf("https://localhost:%d", bPort),
	).Replace(clustered)
	if bConfig == clustered {
		t.Fatal("node B's Caddyfile is node A's")
	}
	bFile := filepath.Join(e.dir, "Caddyfile.b")
	if err := os.WriteFile(bFile, []byte(bConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	bEnv := append(append([]string(nil), e.env...),
		"XDG_DATA_HOME="+filepath.Join(e.dir, "xdg-data-b"), "XDG_CONFIG_HOME="+filepath.Join(e.dir, "xdg-config-b"))
	b := e.startNode("node-b", bFile, bPort, bEnv, root)
	if !a.root.Equal(b.root) {
		t.Fatal("the nodes read different roots")
	}
	for name, port := range map[string]int{"node A": e.mtlsPort, "node B": bPort} {
		conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), a.tlsConfig(nil))
		if err != nil {
			t.Fatalf("%s's server certificate does not chain to the root in the database: %v", name, err)
		}
		conn.Close()
	}

	// The CLI issues from the CA in the database.
	certDir := filepath.Join(e.dir, "certs")
	e.ok("", "cert", "issue", "proxy-sql", "--role", "proxy", "--out", certDir)
	cert, err := tls.LoadX509KeyPair(filepath.Join(certDir, "proxy-sql.chain.crt"), filepath.Join(certDir, "proxy-sql.key"))
	if err != nil {
		t.Fatal(err)
	}
	for name, node := range map[string]*cliGateway{"node A": a, "node B": b} {
		if _, err := node.register(&cert, "through "+name); err != nil {
			t.Errorf("a certificate issued by the CLI, on %s: %v", name, err)
		}
	}

	// Everything Caddy stored is in the database; no node wrote a CA file.
	ctx := context.Background()
	for _, key := range []string{
		"pki/authorities/local/root.crt", "pki/authorities/local/root.key",
		"pki/authorities/local/intermediate.crt", "pki/authorities/local/intermediate.key",
		"certificates/local/localhost/localhost.crt", "certificates/local/localhost/localhost.key",
	} {
		if _, err := db().CertData.Get(ctx, key); err != nil {
			t.Errorf("%s is not in the database: %v", key, err)
		}
	}
	for _, dir := range []string{filepath.Join(e.dir, "caddy"), filepath.Join(e.dir, "xdg-data", "caddy", "pki"), filepath.Join(e.dir, "xdg-data-b", "caddy", "pki")} {
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists (%v): a node used file storage", dir, err)
		}
	}
	// Private keys are sealed with the keyring.
	for _, key := range []string{"pki/authorities/local/root.key", "pki/authorities/local/intermediate.key", "certificates/local/localhost/localhost.key"} {
		row, err := db().CertData.Get(ctx, key)
		if err == nil && (strings.Contains(string(row.Value), "PRIVATE KEY") || !bytes.HasPrefix(row.Value, []byte{1})) {
			t.Errorf("%s is in the database in the clear", key)
		}
	}
	// keys rotate moves the storage values to the new key, and the CLI
	// still issues from the CA afterwards.
	rotated := e.ok("", "keys", "rotate")
	if !strings.Contains(rotated.stdout, "of Caddy's storage (certificates, CA keys) with key") {
		t.Errorf("keys rotate did not re-encrypt the storage:\n%s", rotated)
	}
	e.ok("", "cert", "issue", "proxy-after-rotation", "--role", "proxy", "--out", filepath.Join(e.dir, "certs-2"))
	newKeys, err := keyring.Load(e.keyringPath())
	if err != nil {
		t.Fatal(err)
	}
	if listed := e.ok("", "keys", "list"); !strings.Contains(listed.stdout, "Key "+newKeys.PrimaryID()+" also seals ") {
		t.Errorf("keys list does not say what the new key seals in the storage:\n%s", listed)
	}
	usage, err := certstore.KeyUsage(ctx, db().CertData)
	if err != nil || usage[newKeys.PrimaryID()] == 0 || len(usage) != 1 {
		t.Errorf("storage values per key after keys rotate: %v, %v; want all under %s", usage, err, newKeys.PrimaryID())
	}
	// Certificate operations released their locks.
	var held int
	if err := db().DB.NewSelect().Table("certmagic_locks").ColumnExpr("COUNT(*)").Scan(ctx, &held); err != nil || held != 0 {
		t.Errorf("%d storage locks still held after start-up (%v)", held, err)
	}
}

// TestCaddysStorageExportAndImportMoveACAIntoTheDatabase is the migration
// the README gives for an existing deployment: `caddy storage export` from
// the file storage, `caddy storage import` into msgbroker_sql; the CA
// arrives byte for byte, sealed with the keyring.
func TestCaddysStorageExportAndImportMoveACAIntoTheDatabase(t *testing.T) {
	bin := cliBinary(t)
	dir := t.TempDir()
	env := append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(dir, "xdg-data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "xdg-config"))
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("caddy %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	files := filepath.Join(dir, "caddy")
	write(t, filepath.Join(dir, "Caddyfile.files"), fmt.Sprintf("{\n\tstorage file_system %s\n\tskip_install_trust\n\tpki {\n\t\tca local\n\t}\n}\n", files))
	run("validate", "--config", "Caddyfile.files") // the pki app makes its CA when provisioned
	rootFile, err := os.ReadFile(filepath.Join(files, "pki", "authorities", "local", "root.crt"))
	if err != nil {
		t.Fatalf("no CA in the file storage: %v", err)
	}

	keyringPath := filepath.Join(dir, "keyring.json")
	kr, _, err := keyring.CreateIfMissing(keyringPath)
	if err != nil {
		t.Fatal(err)
	}
	dbPath := filepath.Join(dir, "certs.db")
	write(t, filepath.Join(dir, "Caddyfile.sql"), fmt.Sprintf("{\n\tstorage msgbroker_sql {\n\t\tdatabase sqlite %s\n\t\tencryption_key_file %s\n\t}\n}\n", dbPath, keyringPath))
	run("storage", "export", "--config", "Caddyfile.files", "--output", "storage.tar")
	run("storage", "import", "--config", "Caddyfile.sql", "--input", "storage.tar")

	db, err := storage.Open(context.Background(), storage.Config{Driver: storage.DriverSQLite, DSN: dbPath})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sealed := certstore.New(storage.New(db).CertData, certstore.Options{Sealer: kr})
	got, err := sealed.Load(context.Background(), "pki/authorities/local/root.crt")
	if err != nil || !bytes.Equal(got, rootFile) {
		t.Fatalf("the imported root = %q, %v; want the file's", got, err)
	}
	raw, err := storage.New(db).CertData.Get(context.Background(), "pki/authorities/local/root.key")
	if err != nil || bytes.Contains(raw.Value, []byte("PRIVATE KEY")) {
		t.Fatalf("the imported CA key is missing or in the clear: %v", err)
	}
	// And back out: export from the database gives the same files.
	run("storage", "export", "--config", "Caddyfile.sql", "--output", "again.tar")
	if names := tarNames(t, filepath.Join(dir, "again.tar")); !slices.Contains(names, "pki/authorities/local/root.key") || !slices.Contains(names, "pki/authorities/local/intermediate.crt") {
		t.Errorf("export from the database lists %v", names)
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// tarNames lists the regular files in a tar archive.
func tarNames(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			names = append(names, h.Name)
		}
	}
}
