package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/msgbroker/caddy-msgbroker/internal/broker"
)

// TestExampleClientsTalkToTheGateway builds the example proxy and worker
// and runs them against a gateway with certificates from its CA.
func TestExampleClientsTalkToTheGateway(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example clients")
	}
	g := startGateway(t, "sqlite", "")
	dir := t.TempDir()
	bin := func(name string) string {
		out := filepath.Join(dir, name)
		cmd := exec.Command("go", "build", "-o", out, "../examples/clients/"+name)
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", name, err, msg)
		}
		return out
	}
	files := func(clientID, role string) []string {
		certs := g.services().Certificates
		issued, _, err := certs.Issue(context.Background(), broker.Actor{Name: "examples-test"},
			broker.IssueRequest{ClientID: clientID, Role: role})
		if err != nil {
			t.Fatal(err)
		}
		// The names `caddy msgbroker cert issue --out` writes; the
		// clients' defaults read them.
		for name, data := range map[string][]byte{
			clientID + ".chain.crt": issued.ChainPEM, clientID + ".key": issued.PrivateKeyPEM, "ca.crt": issued.CAPEM,
		} {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return []string{"-url", fmt.Sprintf("https://localhost:%d", g.mtlsPort), "-certs", dir, "-client", clientID}
	}
	run := func(binary string, args ...string) string {
		out, err := exec.Command(binary, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", filepath.Base(binary), args, err, out)
		}
		return string(out)
	}

	proxyOut := run(bin("proxy"), append(files("example-proxy", "proxy"), "-number", "+4915200000000", "-body", "hi")...)
	id := regexp.MustCompile(`registered ([0-9a-f-]{36}): queued`).FindStringSubmatch(proxyOut)
	if id == nil {
		t.Fatalf("proxy printed %q", proxyOut)
	}
	workerOut := run(bin("worker"), append(files("example-worker", "worker"), "-id", id[1], "-retries", "1")...)
	if !strings.Contains(workerOut, "attempts 1") || !strings.HasSuffix(strings.TrimSpace(workerOut), id[1]+": delivered") {
		t.Fatalf("worker printed %q", workerOut)
	}
}

// TestProductionExampleRefusesToStartWithoutItsEnvironment runs
// examples/production.Caddyfile with no environment: it must stop before
// anything starts (no listener, no certificate obtained, no trust store
// touched) and say on the terminal which values are missing, the database
// DSN included, although the example logs to a file.
func TestProductionExampleRefusesToStartWithoutItsEnvironment(t *testing.T) {
	ex := newExample(t, "../examples/production.Caddyfile")
	errText := ex.runRefused(t, nil, "run", "--config", "production.Caddyfile")
	for _, want := range []string{"missing settings", "{env.MSGBROKER_DB_DSN}", "{env.MSGBROKER_REDIS_ADDR}",
		"{env.MSGBROKER_KEYRING}", "{env.MSGBROKER_HASH_KEY}", "{env.MSGBROKER_JWT_SECRET}"} {
		if !strings.Contains(errText, want) {
			t.Errorf("stderr does not name %s:\n%s", want, errText)
		}
	}
}

// runRefused runs the example binary with args and extra environment,
// requires it to exit with an error within 30 s before starting anything
// (no listener, no certificate, no trust store, per stderr and the
// example's log file), and returns its stderr.
func (ex *example) runRefused(t *testing.T, env []string, args ...string) string {
	t.Helper()
	cmd := ex.command(ex.bin, args...)
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the gateway started without its environment")
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("the gateway was still running after 30 s:\n%s", stderr.String())
	}
	errText := stderr.String()
	logFile, _ := os.ReadFile(filepath.Join(ex.dir, "logs", "msgbroker.log"))
	for _, started := range []string{"server running", "obtaining certificate", "installing root certificate",
		"enabling automatic TLS certificate management"} {
		if strings.Contains(errText, started) || strings.Contains(string(logFile), started) {
			t.Errorf("the gateway got as far as %q before failing:\n%s\n%s", started, errText, logFile)
		}
	}
	return errText
}
