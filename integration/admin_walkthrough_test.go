package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msgbroker/caddy-msgbroker/storage"
)

// TestAdminWalkthroughWithCurl runs the README's admin walk-through
// (testdata/admin_walkthrough.sh) with the real curl, openssl and jq
// against a real gateway, then checks the audit log holds every step.
func TestAdminWalkthroughWithCurl(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "openssl", "jq"} {
		requireTool(t, tool, "install "+tool)
	}
	script, err := filepath.Abs("testdata/admin_walkthrough.sh")
	if err != nil {
		t.Fatal(err)
	}
	eachAdminDialect(t, func(t *testing.T, p *portalGateway) {
		cmd := exec.Command("bash", script)
		cmd.Dir = t.TempDir()
		cmd.Env = append(os.Environ(),
			fmt.Sprintf("ADMIN=https://localhost:%d", p.port),
			fmt.Sprintf("MTLS=https://localhost:%d", p.mtlsPort),
			"CACERT="+filepath.Join(p.srv.StorageDir, "pki", "authorities", "local", "root.crt"),
			"ADMIN_EMAIL=admin@example.com", "ADMIN_PASSWORD="+portalPassword)
		out, err := cmd.CombinedOutput()
		t.Logf("walk-through output:\n%s", out)
		if err != nil {
			t.Fatalf("the walk-through failed: %v", err)
		}
		for _, want := range []string{`"status":"queued"`, "refused", "verify OK", `"revocation_reason":"keyCompromise"`, `"email":"tenant@example.com"`,
			// statistics and the audit log, JSON and CSV
			`"messages":1,"queued":1`, `"by_client":[{"client_id":"proxy-9","total":1}]`,
			`{"actor":"admin@example.com","action":"certificate.revoke",`, "admin@example.com,user.create,",
			"== done"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("the output lacks %q", want)
			}
		}
		for _, action := range []string{"certificate.issue", "certificate.revoke", "user.create"} {
			rows := p.auditRows(action)
			if len(rows) == 0 || rows[0].Actor != "admin@example.com" || rows[0].Outcome != storage.AuditSuccess || rows[0].RemoteAddr != "127.0.0.1" {
				t.Errorf("audit of %s = %+v", action, rows)
			}
		}
	})
}
