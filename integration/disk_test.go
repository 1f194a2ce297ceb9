package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

// health fetches /health and returns its status and the database component.
func (g *gateway) health() (int, string, string) {
	g.t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/health", g.httpPort))
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var report struct {
		Components map[string]string `json:"components"`
		Details    map[string]string `json:"details"`
	}
	if err := json.Unmarshal(raw, &report); err != nil {
		g.t.Fatalf("/health answered %d %s: %v", resp.StatusCode, raw, err)
	}
	return resp.StatusCode, report.Components["database"], report.Details["database"]
}

// A full disk answers 503 with Retry-After (never 500), /health reports the
// database unhealthy, and both recover without a restart once space returns.
func TestFullDiskAnswers503AndRecovers(t *testing.T) {
	dir := storagetest.SmallFilesystem(t, "4m")
	g := startGatewayWith(t, "database sqlite "+filepath.Join(dir, "broker.db"), "")
	cert, _ := g.issue("proxy-disk", "proxy")
	client := g.client(&cert)
	if status, db, _ := g.health(); status != http.StatusOK || db != "healthy" {
		t.Fatalf("/health before = %d, database %s", status, db)
	}

	storagetest.FillDisk(t, filepath.Join(dir, "filler"))

	var full response
	for i := 0; i < 2000; i++ {
		r, err := g.send(client, "POST", "/internal/messages/register", registerBody("", "+4915200000012", fmt.Sprintf("message %d %0900d", i, i)))
		if err != nil {
			t.Fatal(err)
		}
		if r.Status == http.StatusCreated {
			continue
		}
		full = r
		break
	}
	if full.Status != http.StatusServiceUnavailable || full.errorCode() != "service_unavailable" {
		t.Fatalf("register on a full disk = %d %s, want 503 service_unavailable", full.Status, full.Raw)
	}
	if status, db, why := g.health(); status != http.StatusServiceUnavailable || db != "unhealthy" {
		t.Fatalf("/health on a full disk = %d, database %s (%s); want 503, unhealthy", status, db, why)
	}

	if err := os.Remove(filepath.Join(dir, "filler")); err != nil {
		t.Fatal(err)
	}
	if status, db, why := g.health(); status != http.StatusOK || db != "healthy" {
		t.Fatalf("/health after space returned = %d, database %s (%s)", status, db, why)
	}
	if r := g.call(client, "POST", "/internal/messages/register", registerBody("", "+4915200000012", "after")); r.Status != http.StatusCreated {
		t.Fatalf("register after space returned = %d %s", r.Status, r.Raw)
	}
}

// A database file deleted under the running gateway answers 503 (never a
// silent 201 into a file nobody can read again) and /health says why.
func TestDeletedDatabaseFileAnswers503(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broker.db")
	g := startGatewayWith(t, "database sqlite "+path, "")
	cert, _ := g.issue("proxy-deleted", "proxy")
	client := g.client(&cert)
	if r := g.call(client, "POST", "/internal/messages/register", registerBody("", "+4915200000012", "before")); r.Status != http.StatusCreated {
		t.Fatalf("before = %d %s", r.Status, r.Raw)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	r := g.call(client, "POST", "/internal/messages/register", registerBody("", "+4915200000012", "after"))
	if r.Status != http.StatusServiceUnavailable {
		t.Fatalf("register after the file was deleted = %d %s, want 503", r.Status, r.Raw)
	}
	status, db, why := g.health()
	if status != http.StatusServiceUnavailable || db != "unhealthy" || why != "database file was removed or replaced; restart the gateway" {
		t.Fatalf("/health = %d, database %s (%s)", status, db, why)
	}
}
