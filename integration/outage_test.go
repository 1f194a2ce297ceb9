package integration

import (
	"database/sql"
	"fmt"
	"net/http"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

// TestDatabaseOutageAnswers503 runs the gateway under its own MariaDB
// account, then locks the account and kills its connections: registrations
// must get 503 with Retry-After (never 500), and succeed again once the
// database is back.
func TestDatabaseOutageAnswers503(t *testing.T) {
	dsn := storagetest.MySQL(t)
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := sql.Open("mysql", "root@tcp(127.0.0.1:3306)/")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	user := "out_" + cfg.DBName[len(cfg.DBName)-8:]
	mustExec := func(stmt string) {
		t.Helper()
		if _, err := admin.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	mustExec(fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY 'pw-%s'", user, user))
	t.Cleanup(func() { _, _ = admin.Exec(fmt.Sprintf("DROP USER '%s'@'%%'", user)) })
	mustExec(fmt.Sprintf("GRANT ALL ON %s.* TO '%s'@'%%'", cfg.DBName, user))
	cfg.User, cfg.Passwd = user, "pw-"+user

	t.Setenv("MSGBROKER_OUTAGE_DSN", cfg.FormatDSN())
	g := startGatewayWith(t, "database mysql {env.MSGBROKER_OUTAGE_DSN} {\n\t\t\tauto_migrate on\n\t\t}", "")
	cert, _ := g.issue("proxy-outage", "proxy")
	client := g.client(&cert)
	if r := g.call(client, "POST", "/internal/messages/register", registerBody("", "+4915200000012", "before")); r.Status != http.StatusCreated {
		t.Fatalf("before the outage = %d %s", r.Status, r.Raw)
	}

	mustExec(fmt.Sprintf("ALTER USER '%s'@'%%' ACCOUNT LOCK", user))
	rows, err := admin.Query("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?", user)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		_ = rows.Scan(&id)
		ids = append(ids, id)
	}
	rows.Close()
	for _, id := range ids {
		_, _ = admin.Exec(fmt.Sprintf("KILL %d", id))
	}
	resp, err := g.send(client, "POST", "/internal/messages/register", registerBody("", "+4915200000012", "during"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != http.StatusServiceUnavailable || resp.errorCode() != "service_unavailable" {
		t.Fatalf("during the outage = %d %s, want 503 service_unavailable", resp.Status, resp.Raw)
	}

	mustExec(fmt.Sprintf("ALTER USER '%s'@'%%' ACCOUNT UNLOCK", user))
	if r := g.call(client, "POST", "/internal/messages/register", registerBody("", "+4915200000012", "after")); r.Status != http.StatusCreated {
		t.Fatalf("after the outage = %d %s", r.Status, r.Raw)
	}
}
