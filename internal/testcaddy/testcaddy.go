// Package testcaddy runs a real, in-process Caddy built from the standard
// modules and ours, for tests. Caddy is a process-wide singleton, so tests
// using it must not run in parallel with each other.
package testcaddy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/msgbroker/caddy-msgbroker"
)

// Server is a running in-process Caddy.
type Server struct {
	AdminAddr string
	// HTTPPort is Caddy's http_port, where the redirect listener of https
	// sites binds instead of :80.
	HTTPPort   int
	StorageDir string
	T          testing.TB
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	handedOut.mu.Lock()
	defer handedOut.mu.Unlock()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("finding a free port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		// The kernel may offer a port again as soon as it is closed; two
		// listeners of one config given the same port fail to adapt.
		if !handedOut.ports[port] {
			handedOut.ports[port] = true
			return port
		}
	}
}

// handedOut remembers the ports FreePort returned in this test binary.
var handedOut = struct {
	mu    sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// Start loads caddyfile into a fresh in-process Caddy and stops it when the
// test ends. The Caddyfile must begin with a global options block; Start adds
// an admin endpoint and the HTTP port (where redirects listen) on free ports,
// skip_install_trust and file storage in a
// temporary directory to it.
func Start(t testing.TB, caddyfile string) *Server {
	t.Helper()
	s := &Server{
		AdminAddr:  fmt.Sprintf("localhost:%d", FreePort(t)),
		HTTPPort:   FreePort(t),
		StorageDir: t.TempDir(),
		T:          t,
	}
	cfgJSON, err := s.Adapt(caddyfile)
	if err != nil {
		t.Fatal(err)
	}
	if err := caddy.Load(cfgJSON, true); err != nil {
		t.Fatalf("starting caddy: %v", err)
	}
	t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			t.Logf("stopping caddy: %v", err)
		}
	})
	return s
}

// Adapt completes the global options of caddyfile and adapts it to JSON.
func (s *Server) Adapt(caddyfile string) ([]byte, error) {
	body, ok := afterGlobalBlockOpening(caddyfile)
	if !ok {
		return nil, fmt.Errorf("testcaddy: the Caddyfile must start with a global options block")
	}
	// http_port on a free port: Caddy's HTTP->HTTPS redirect listener for
	// https sites would otherwise bind :80, which an ordinary user cannot.
	full := fmt.Sprintf("{\n\tadmin %s\n\thttp_port %d\n\tskip_install_trust\n\tstorage file_system %s\n%s",
		s.AdminAddr, s.HTTPPort, s.StorageDir, body)
	out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(full), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		return nil, fmt.Errorf("adapting test Caddyfile: %w", err)
	}
	for _, w := range warnings {
		s.T.Logf("caddyfile warning: %s", w.String())
	}
	return out, nil
}

// Reload posts a new config to the admin API's /load endpoint, as an
// operator's `caddy reload` does, forcing a reload even when the config is
// unchanged.
func (s *Server) Reload(caddyfile string) error {
	cfgJSON, err := s.Adapt(caddyfile)
	if err != nil {
		return err
	}
	return s.PostLoad(cfgJSON)
}

// PostLoad posts cfgJSON to the admin API's /load endpoint.
func (s *Server) PostLoad(cfgJSON []byte) error {
	req, err := http.NewRequest(http.MethodPost, "http://"+s.AdminAddr+"/load", bytes.NewReader(cfgJSON))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Cache-Control", "must-revalidate")
	client := &http.Client{Timeout: 60 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("posting /load: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("posting /load: %s: %s", resp.Status, msg)
	}
	// The old servers close their idle keep-alive connections as they
	// stop; a request sent on one in that instant ends in EOF (and a POST
	// is never retried). Clients reconnect after a reload; so do tests on
	// the default transport.
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	return waitForOldListeners(10 * time.Second)
}

// AdminGet fetches a path from the admin API (e.g. /metrics).
func (s *Server) AdminGet(path string) (int, []byte, error) {
	resp, err := http.Get("http://" + s.AdminAddr + path)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// GetJSON fetches url and decodes its JSON body into v.
func GetJSON(t testing.TB, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: decoding JSON: %v", url, err)
	}
	return resp.StatusCode
}

// afterGlobalBlockOpening returns what follows the opening "{" line of the
// global options block, skipping leading comments and blank lines.
func afterGlobalBlockOpening(caddyfile string) (string, bool) {
	rest := caddyfile
	for rest != "" {
		line, after, _ := strings.Cut(rest, "\n")
		switch trimmed := strings.TrimSpace(line); {
		case trimmed == "" || strings.HasPrefix(trimmed, "#"):
			rest = after
		case trimmed == "{":
			return after, true
		default:
			return "", false
		}
	}
	return "", false
}
