package integration

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestBinaryListsEveryModule checks the custom binary registers all of our
// modules (what `xcaddy build --with` must also give).
func TestBinaryListsEveryModule(t *testing.T) {
	out, err := exec.Command(cliBinary(t), "list-modules").CombinedOutput()
	if err != nil {
		t.Fatalf("list-modules: %v\n%s", err, out)
	}
	for _, id := range []string{
		"msgbroker",
		"http.handlers.msgbroker_health",
		"http.handlers.msgbroker_internal",
		"http.handlers.msgbroker_docs",
		"http.handlers.msgbroker_crl",
		"tls.client_auth.verifier.msgbroker",
		"tls.ca_pool.source.msgbroker",
	} {
		if !strings.Contains("\n"+string(out), "\n"+id+"\n") {
			t.Errorf("list-modules does not list %s", id)
		}
	}
}

// TestEmbeddedDefaultRunsFromAFreshDirectory runs the binary on
// Caddyfile.example exactly as the README says, in an empty directory,
// and checks /health, then that `caddy validate` of it creates nothing.
func TestEmbeddedDefaultRunsFromAFreshDirectory(t *testing.T) {
	bin := cliBinary(t)
	example, err := os.ReadFile("../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	validateDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(validateDir, "Caddyfile.example"), example, 0o644); err != nil {
		t.Fatal(err)
	}
	validate := exec.Command(bin, "validate", "--config", "Caddyfile.example")
	validate.Dir = validateDir
	if out, err := validate.CombinedOutput(); err != nil {
		t.Fatalf("caddy validate: %v\n%s", err, out)
	}
	// Caddy's own pki app creates its CA when provisioned, even by
	// validate; ours must create nothing.
	for _, name := range []string{"msgbroker.db", "secrets"} {
		if _, err := os.Stat(filepath.Join(validateDir, "data", name)); !os.IsNotExist(err) {
			t.Errorf("caddy validate created data/%s", name)
		}
	}

	// The example listens on fixed ports; skip rather than fight a gateway
	// a developer is running.
	if resp, err := http.Get("http://localhost:8080/health"); err == nil {
		resp.Body.Close()
		t.Skip("something already listens on localhost:8080")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Caddyfile.example"), example, 0o644); err != nil {
		t.Fatal(err)
	}
	run := exec.Command(bin, "run", "--config", "Caddyfile.example")
	run.Dir = dir
	logs := &lockedBuffer{}
	run.Stdout, run.Stderr = logs, logs
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = run.Process.Kill()
		_ = run.Wait()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://localhost:8080/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("/health = %d", resp.StatusCode)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway never answered /health: %v\n%s", err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, name := range []string{"msgbroker.db", "secrets/keyring.json", "caddy/pki/authorities/local/root.crt"} {
		if _, err := os.Stat(filepath.Join(dir, "data", name)); err != nil {
			t.Errorf("data/%s not created: %v", name, err)
		}
	}
	if !strings.Contains(logs.String(), "DEVELOPMENT ENCRYPTION KEY GENERATED") {
		t.Errorf("no loud log line about the generated development key:\n%s", logs.String())
	}
}

// lockedBuffer collects a child process's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
