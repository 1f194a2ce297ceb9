package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msgbroker/caddy-msgbroker/internal/keyring"
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

	keyringPath := filepath.Join(ex.dir, "keyring.json")
	if _, _, err := keyring.CreateIfMissing(keyringPath); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(keyringPath, nobodyID, nobodyID); err != nil {
			t.Fatal(err)
		}
	}
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
