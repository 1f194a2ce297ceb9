package integration

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/msgbroker/caddy-msgbroker/internal/keyring"
)

// TestSecretsAndBodiesNeverReachLogsOrConfig runs a gateway logging at
// DEBUG to a file, with secrets from the environment, registers and
// revokes, and then searches the log and the admin API's /config/ for any
// secret, key, message body or phone number.
func TestSecretsAndBodiesNeverReachLogsOrConfig(t *testing.T) {
	dir := t.TempDir()
	logFile := filepath.Join(dir, "caddy.log")
	keyringPath := filepath.Join(dir, "keyring.json")
	kr, _, err := keyring.CreateIfMissing(keyringPath)
	if err != nil {
		t.Fatal(err)
	}
	keyJSON, err := os.ReadFile(keyringPath)
	if err != nil {
		t.Fatal(err)
	}
	const hashKey = "hash-key-SENTINEL-7f3a9c1e5b2d4f60"
	const jwtSecret = "jwt-secret-SENTINEL-0a1b2c3d4e5f60718293a4b5c6d7e8f9"
	t.Setenv("IT_HASH_KEY", hashKey)
	t.Setenv("IT_JWT_SECRET", jwtSecret)
	g := startConfigured(t, &gateway{globalOptions: "log {\n\t\toutput file " + logFile + "\n\t\tlevel DEBUG\n\t}"},
		databaseConfig(t, "sqlite"),
		"encryption_key_file "+keyringPath+"\n\t\thash_key {env.IT_HASH_KEY}\n\t\tjwt_secret {env.IT_JWT_SECRET}")
	if g.services().Keyring().PrimaryID() != kr.PrimaryID() {
		t.Fatal("the gateway does not use the keyring file given")
	}

	cert, serial := g.issue("proxy-secret", "proxy")
	const body = "BODY-SENTINEL-the-meeting-is-at-noon"
	const number = "+4917612345678"
	if r := g.call(g.client(&cert), "POST", "/internal/messages/register", registerBody(uuid.NewString(), number, body)); r.Status != http.StatusCreated {
		t.Fatalf("register = %d %s", r.Status, r.Raw)
	}
	certs := g.services().Certificates
	if _, err := certs.Revoke(context.Background(), adminActor, serial, "test"); err != nil {
		t.Fatal(err)
	}
	_, config, err := g.srv.AdminGet("/config/")
	if err != nil {
		t.Fatal(err)
	}
	logs, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(logs), "message registered") {
		t.Fatalf("the log file holds no broker events; the test would prove nothing:\n%s", logs)
	}
	keyMaterial := keyMaterialOf(t, keyJSON)
	for name, secret := range map[string]string{
		"hash key": hashKey, "JWT secret": jwtSecret, "message body": body,
		"phone number": number, "phone digits": strings.TrimPrefix(number, "+"), "key material": keyMaterial,
	} {
		if strings.Contains(string(logs), secret) {
			t.Errorf("the %s appears in the log", name)
		}
		if strings.Contains(string(config), secret) {
			t.Errorf("the %s appears in the config served by the admin API", name)
		}
	}
}

// keyMaterialOf returns the base64 key of the first key in a keyring file.
func keyMaterialOf(t *testing.T, keyringJSON []byte) string {
	t.Helper()
	_, after, ok := strings.Cut(string(keyringJSON), `"key": "`)
	if !ok {
		_, after, ok = strings.Cut(string(keyringJSON), `"key":"`)
	}
	if !ok {
		t.Fatalf("no key in keyring file")
	}
	material, _, _ := strings.Cut(after, `"`)
	return material
}
