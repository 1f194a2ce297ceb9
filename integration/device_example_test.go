package integration

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/msgbroker/caddy-msgbroker/internal/keyring"
	"github.com/msgbroker/caddy-msgbroker/internal/sessions"
	"github.com/msgbroker/caddy-msgbroker/internal/testcaddy"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

// TestDeviceExampleRefusesToStartWithoutItsEnvironment runs
// examples/device.Caddyfile first with no environment, then with every
// value but the WordPress DSN: each time it must stop before anything
// starts and name on the terminal what is missing.
func TestDeviceExampleRefusesToStartWithoutItsEnvironment(t *testing.T) {
	ex := newExample(t, "../examples/device.Caddyfile")
	run := func(env []string) string {
		t.Helper()
		return ex.runRefused(t, env, "run", "--config", "device.Caddyfile")
	}

	errText := run(nil)
	for _, want := range []string{"missing settings", "{env.MSGBROKER_DB_DSN}", "{env.MSGBROKER_REDIS_ADDR}",
		"{env.MSGBROKER_KEYRING}", "{env.MSGBROKER_HASH_KEY}", "{env.MSGBROKER_JWT_SECRET}"} {
		if !strings.Contains(errText, want) {
			t.Errorf("stderr does not name %s:\n%s", want, errText)
		}
	}

	keyringPath := ex.keyring()
	errText = run([]string{
		// Nothing listens there: the servers are only contacted at start.
		"MSGBROKER_DB_DSN=msgbroker:secret@tcp(127.0.0.1:1)/msgbroker",
		"MSGBROKER_REDIS_ADDR=127.0.0.1:1",
		"MSGBROKER_KEYRING=" + keyringPath,
		"MSGBROKER_HASH_KEY=0123456789abcdef0123456789abcdef",
		"MSGBROKER_JWT_SECRET=0123456789abcdef0123456789abcdef0123456789abcdef",
	})
	if !strings.Contains(errText, "wordpress dsn") || !strings.Contains(errText, "MSGBROKER_WP_DSN") {
		t.Errorf("stderr does not name the WordPress DSN:\n%s", errText)
	}
}

// TestDeviceExampleServesTheExampleClients runs examples/device.Caddyfile
// with the real binary, as an unprivileged user, with its whole
// environment: MariaDB for the broker, a WordPress-shaped database for the
// directory, the shared Redis (sessions DB 2, messages DB 1, stream
// device-messages). Only the ports are changed, since an ordinary user
// cannot bind 80, 443 or 8443; both sites are named localhost, so Caddy's
// local CA serves them. The Go example client (RSA, HPKE) and the browser
// client's code under Node then each complete a session over HTTPS; the
// devices' status is written back to WordPress and every message reaches
// the stream.
func TestDeviceExampleServesTheExampleClients(t *testing.T) {
	requireTool(t, "node", "apt-get install nodejs")
	redisAddr := storagetest.Redis(t)
	brokerDSN, wpDSN := storagetest.MySQL(t), storagetest.MySQL(t)
	suffix := strings.ToLower(rand.Text()[:8])
	devices := []string{"rsa-" + suffix, "hpke-" + suffix, "js-" + suffix}
	userID := fmt.Sprintf("5f0c3e2a-9b1d-4c6e-8a7f-%012s", suffix)
	wordPressUser(t, wpDSN, userID, devices)

	ex := newExample(t, "../examples/device.Caddyfile")
	httpPort, httpsPort, mtlsPort := testcaddy.FreePort(t), testcaddy.FreePort(t), testcaddy.FreePort(t)
	config := filepath.Join(ex.dir, "device.Caddyfile")
	text, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	ported := strings.Replace(string(text), "{\n\temail ops@example.com\n", fmt.Sprintf("{\n\temail ops@example.com\n\thttp_port %d\n\thttps_port %d\n", httpPort, httpsPort), 1)
	ported = strings.Replace(ported, "}:8443 {", fmt.Sprintf("}:%d {", mtlsPort), 1)
	if ported == string(text) || strings.Count(ported, "_port ") != 2 || strings.Contains(ported, ":8443 {") {
		t.Fatal("the example's global block or internal site address changed: adapt this test")
	}
	if err := os.WriteFile(config, []byte(ported), 0o644); err != nil {
		t.Fatal(err)
	}
	keyringPath := ex.keyring()
	ex.env = append(ex.env,
		"MSGBROKER_DB_DSN="+brokerDSN, "MSGBROKER_KEYRING="+keyringPath,
		"MSGBROKER_HASH_KEY=0123456789abcdef0123456789abcdef",
		"MSGBROKER_JWT_SECRET=0123456789abcdef0123456789abcdef0123456789abcdef",
		"MSGBROKER_REDIS_ADDR="+redisAddr, "MSGBROKER_WP_DSN="+wpDSN,
		"MSGBROKER_DOMAIN=localhost", "MSGBROKER_INTERNAL_DOMAIN=localhost")
	ex.cmd = ex.command(ex.bin, "run", "--config", "device.Caddyfile")
	ex.cmd.Stdout, ex.cmd.Stderr = ex.logs, ex.logs
	if err := ex.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ex.cmd.Process.Kill(); _ = ex.cmd.Wait() })

	root := filepath.Join(ex.dir, "xdg-data", "caddy", "pki", "authorities", "local", "root.crt")
	api := fmt.Sprintf("https://localhost:%d/api", httpsPort)
	waitForHTTPS(t, ex, root, fmt.Sprintf("https://localhost:%d/health", httpsPort))

	messages := redis.NewClient(&redis.Options{Addr: redisAddr, DB: 1})
	t.Cleanup(func() {
		defer messages.Close()
		cleanDeviceStream(messages, userID)
	})
	client := filepath.Join(ex.dir, "device")
	if out, err := exec.Command("go", "build", "-o", client, "../examples/clients/device").CombinedOutput(); err != nil {
		t.Fatalf("building the example device client: %v\n%s", err, out)
	}
	browser := filepath.Join(ex.dir, "browser")
	if err := os.CopyFS(browser, os.DirFS("../examples/clients/device/browser")); err != nil {
		t.Fatal(err)
	}
	ex.env = append(ex.env, "SSL_CERT_FILE="+root, "NODE_EXTRA_CA_CERTS="+root)
	for i, args := range [][]string{
		{client, "-api", api, "-key", userID + devices[0], "-mode", "rsa", "-n", "3"},
		{client, "-api", api, "-key", userID + devices[1], "-mode", "hpke", "-n", "3"},
		{"node", filepath.Join(browser, "node.mjs"), api, userID + devices[2], "3"},
	} {
		out := ex.as(args[0], args[1:]...)
		if !strings.Contains(out, "message 3: duplicate") || !strings.HasSuffix(out, "session closed\n") {
			t.Errorf("%s:\n%s", devices[i], out)
		}
	}

	// Each device was "on" in WordPress; each logout wrote it back "off".
	db, err := sql.Open("mysql", wpDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var list string
	if err := db.QueryRow("SELECT meta_value FROM wp_usermeta WHERE meta_key = 'devices'").Scan(&list); err != nil {
		t.Fatal(err)
	}
	if want := wordPressDevices(devices, "off"); list != want {
		t.Errorf("WordPress device list after the sessions:\n%s\nwant\n%s", list, want)
	}
	// Every delivered message is in the example's stream (3 per client).
	if got := len(deviceStreamEntries(t, messages, userID)); got != 9 {
		t.Errorf("the stream holds %d messages of this run, want 9", got)
	}
}

// wordPressUser creates wp_users and wp_usermeta as WordPress does, with
// one user holding userID and a PHP-serialized list of devices, all "on".
func wordPressUser(t *testing.T, dsn, userID string, devices []string) {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		"CREATE TABLE wp_users (ID bigint(20) unsigned NOT NULL AUTO_INCREMENT, user_login varchar(60) NOT NULL DEFAULT '', PRIMARY KEY (ID))",
		"CREATE TABLE wp_usermeta (umeta_id bigint(20) unsigned NOT NULL AUTO_INCREMENT, user_id bigint(20) unsigned NOT NULL DEFAULT 0, meta_key varchar(255) DEFAULT NULL, meta_value longtext, PRIMARY KEY (umeta_id), KEY user_id (user_id))",
		"INSERT INTO wp_users (ID, user_login) VALUES (7, 'anna')",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	for key, value := range map[string]string{"device_uuid": userID, "devices": wordPressDevices(devices, "on")} {
		if _, err := db.Exec("INSERT INTO wp_usermeta (user_id, meta_key, meta_value) VALUES (7, ?, ?)", key, value); err != nil {
			t.Fatal(err)
		}
	}
}

// wordPressDevices is the devices meta value as PHP's serialize() writes
// it: a list of arrays with id, name and status.
func wordPressDevices(devices []string, status string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "a:%d:{", len(devices))
	for i, d := range devices {
		name := "Phone " + d
		fmt.Fprintf(&b, `i:%d;a:3:{s:2:"id";s:%d:"%s";s:4:"name";s:%d:"%s";s:6:"status";s:%d:"%s";}`, i, len(d), d, len(name), name, len(status), status)
	}
	return b.String() + "}"
}

// waitForHTTPS waits until the example's local CA root exists and url
// answers over TLS verified with it.
func waitForHTTPS(t *testing.T, ex *example, root, url string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := func() error {
			pemBytes, err := os.ReadFile(root)
			if err != nil {
				return err
			}
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(pemBytes)
			c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
			resp, err := c.Get(url)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s: %s", url, resp.Status)
			}
			return nil
		}()
		if err == nil {
			return
		}
		if ex.cmd.ProcessState != nil || time.Now().After(deadline) {
			t.Fatalf("the example never answered %s: %v\n%s", url, err, ex.logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// deviceStreamEntries returns the entries of the example's stream whose
// record belongs to userID.
func deviceStreamEntries(t *testing.T, messages *redis.Client, userID string) []redis.XMessage {
	t.Helper()
	entries, err := messages.XRange(context.Background(), "device-messages", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var mine []redis.XMessage
	for _, e := range entries {
		var r sessions.Record
		if s, ok := e.Values["record"].(string); ok && json.Unmarshal([]byte(s), &r) == nil && r.UserID == userID {
			mine = append(mine, e)
		}
	}
	return mine
}

// cleanDeviceStream removes what the run left in the shared Redis's
// messages DB: its stream entries and message records.
func cleanDeviceStream(messages *redis.Client, userID string) {
	ctx := context.Background()
	entries, _ := messages.XRange(ctx, "device-messages", "-", "+").Result()
	for _, e := range entries {
		var r sessions.Record
		if s, ok := e.Values["record"].(string); ok && json.Unmarshal([]byte(s), &r) == nil && r.UserID == userID {
			messages.XDel(ctx, "device-messages", e.ID)
			messages.Del(ctx, r.ID)
		}
	}
	if n, err := messages.XLen(ctx, "device-messages").Result(); err == nil && n == 0 {
		messages.Del(ctx, "device-messages")
	}
}

// keyring creates a keyring file in the example's directory, owned by the
// user the example runs as, and returns its path.
func (ex *example) keyring() string {
	ex.t.Helper()
	path := filepath.Join(ex.dir, "keyring.json")
	if _, _, err := keyring.CreateIfMissing(path); err != nil {
		ex.t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(path, nobodyID, nobodyID); err != nil {
			ex.t.Fatal(err)
		}
	}
	return path
}
