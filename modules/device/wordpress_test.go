package device_test

import (
	"database/sql"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/msgbroker/caddy-msgbroker/internal/testcaddy"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

// TestDeviceWithTheWordPressDirectory runs a session against a
// WordPress-shaped database: the name comes from the PHP-serialized list,
// and on/off is written back into it, leaving the rest as PHP wrote it.
func TestDeviceWithTheWordPressDirectory(t *testing.T) {
	dsn := storagetest.MySQL(t)
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	list := func(status string) string {
		return fmt.Sprintf(`a:2:{i:0;a:3:{s:2:"id";s:5:"other";s:4:"name";s:1:"O";s:6:"status";s:3:"off";}i:1;a:4:{s:2:"id";s:%d:"%s";s:4:"name";s:11:"Küche Tür";s:6:"status";%s;s:5:"added";d:1733136000.5;}}`,
			len(device), device, status)
	}
	for _, q := range []string{
		"CREATE TABLE wp_users (ID bigint(20) unsigned NOT NULL AUTO_INCREMENT, user_login varchar(60) NOT NULL DEFAULT '', PRIMARY KEY (ID))",
		"CREATE TABLE wp_usermeta (umeta_id bigint(20) unsigned NOT NULL AUTO_INCREMENT, user_id bigint(20) unsigned NOT NULL DEFAULT 0, meta_key varchar(255) DEFAULT NULL, meta_value longtext, PRIMARY KEY (umeta_id), KEY user_id (user_id))",
		"INSERT INTO wp_users (ID, user_login) VALUES (7, 'anna')",
		"INSERT INTO wp_usermeta (user_id, meta_key, meta_value) VALUES (7, 'device_uuid', '" + user + "')",
		"INSERT INTO wp_usermeta (user_id, meta_key, meta_value) VALUES (7, 'devices', '" + list(`s:3:"off"`) + "')",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	stored := func() string {
		var v string
		if err := db.QueryRow("SELECT meta_value FROM wp_usermeta WHERE meta_key = 'devices'").Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	cfg, _ := mysql.ParseDSN(dsn)
	dir, port := t.TempDir(), testcaddy.FreePort(t)
	testcaddy.Start(t, fmt.Sprintf(`{
	msgbroker {
		database sqlite %[1]s/msgbroker.db
		dev_keys %[1]s/secrets
	}
}

http://127.0.0.1:%[2]d {
	handle /api {
		msgbroker_device {
			key_pool 1
			directory wordpress {
				dsn "%[3]s"
				uuid_meta_key device_uuid
				devices_meta_key devices
			}
		}
	}
}
`, dir, port, cfg.FormatDSN()))
	api := fmt.Sprintf("http://127.0.0.1:%d/api", port)

	status, body := post(t, api, url.Values{"key": {key}, "status": {"on"}})
	if status != 200 || !strings.HasSuffix(body, `, "code": 0, "name": "Küche Tür"}`) {
		t.Fatalf("auth: %d %s", status, body)
	}
	if got := stored(); got != list(`s:2:"on"`) {
		t.Errorf("after on:\n got %s\nwant %s", got, list(`s:2:"on"`))
	}
	expect(t, api, url.Values{"key": {user + "unknown"}, "status": {"on"}}, 200, `{"message": "not found", "code": 2}`)
	expect(t, api, url.Values{"key": {key}, "status": {"off"}}, 200, `{"message": "deleted", "code": 0}`)
	if got := stored(); got != list(`s:3:"off"`) {
		t.Errorf("after off:\n got %s\nwant %s", got, list(`s:3:"off"`))
	}
	// A list that is not an array means no devices, not an error.
	if _, err := db.Exec("UPDATE wp_usermeta SET meta_value = 's:3:\"abc\";' WHERE meta_key = 'devices'"); err != nil {
		t.Fatal(err)
	}
	expect(t, api, url.Values{"key": {key}, "status": {"on"}}, 200, `{"message": "not found", "code": 2}`)
}

func TestDeviceSessionExpiresWhenIdle(t *testing.T) {
	eachStore(t, "session_ttl 1s", func(t *testing.T, api string) {
		pub := auth(t, api)
		time.Sleep(1500 * time.Millisecond)
		expect(t, api, url.Values{"key": {key}, "message": {sealed(t, pub, "late "+t.Name())}}, 200, `{"message": "not found", "code": 2}`)
		auth(t, api)
	})
}
