package msgbroker

import (
	"encoding/json"
	"testing"
)

func TestSQLiteDSNInDirMovesOnlyRelativePlainPaths(t *testing.T) {
	cases := map[string]string{
		"./data/msgbroker.db":              "/etc/broker/data/msgbroker.db",
		"data/msgbroker.db?_txlock=normal": "/etc/broker/data/msgbroker.db?_txlock=normal",
		"/var/lib/msgbroker.db":            "/var/lib/msgbroker.db",
		":memory:":                         ":memory:",
		"file:data/x.db?mode=ro":           "file:data/x.db?mode=ro",
	}
	for in, want := range cases {
		if got := sqliteDSNInDir("/etc/broker", in); got != want {
			t.Errorf("sqliteDSNInDir(%q) = %q, want %q", in, got, want)
		}
	}
	if got := sqliteDSNInDir("", "data/x.db"); got != "data/x.db" {
		t.Errorf("without a base directory: %q", got)
	}
}

func TestStorageInDirMovesOnlyStoragePaths(t *testing.T) {
	root := func(raw json.RawMessage) string {
		var s struct{ Root string }
		_ = json.Unmarshal(raw, &s)
		return s.Root
	}
	if got := root(storageInDir("/etc/broker", json.RawMessage(`{"module":"file_system","root":"./data/caddy"}`))); got != "/etc/broker/data/caddy" {
		t.Errorf("relative file_system root became %q", got)
	}
	if got := root(storageInDir("/etc/broker", json.RawMessage(`{"module":"file_system","root":"/srv/caddy"}`))); got != "/srv/caddy" {
		t.Errorf("absolute file_system root became %q", got)
	}
	redis := json.RawMessage(`{"module":"redis","root":"prefix"}`)
	if got := storageInDir("/etc/broker", redis); string(got) != string(redis) {
		t.Errorf("another storage module was changed: %s", got)
	}
	dsn := func(raw json.RawMessage) string {
		var s struct{ Database struct{ DSN string } }
		_ = json.Unmarshal(raw, &s)
		return s.Database.DSN
	}
	for in, want := range map[string]string{
		`{"module":"msgbroker_sql","database":{"driver":"sqlite","dsn":"data/msgbroker.db"},"lock_ttl":5000000000}`: "/etc/broker/data/msgbroker.db",
		`{"module":"msgbroker_sql","database":{"driver":"sqlite","dsn":"/srv/msgbroker.db"}}`:                       "/srv/msgbroker.db",
		`{"module":"msgbroker_sql","database":{"driver":"mysql","dsn":"u@tcp(db)/x"}}`:                              "u@tcp(db)/x",
	} {
		if got := dsn(storageInDir("/etc/broker", json.RawMessage(in))); got != want {
			t.Errorf("msgbroker_sql %s: DSN became %q, want %q", in, got, want)
		}
	}
	// Placeholders are resolved first: an absolute value stays absolute,
	// a relative one goes under the config's directory, an unset one is
	// left for the module to report.
	t.Setenv("MSGBROKER_TEST_KEYRING_ABS", "/run/secrets/keyring.json")
	t.Setenv("MSGBROKER_TEST_DB_REL", "data/certs.db")
	in := `{"module":"msgbroker_sql","database":{"driver":"sqlite","dsn":"{env.MSGBROKER_TEST_DB_REL}"},"encryption_key_file":"{env.MSGBROKER_TEST_KEYRING_ABS}"}`
	var placed struct {
		File     string `json:"encryption_key_file"`
		Database struct{ DSN string }
	}
	_ = json.Unmarshal(storageInDir("/etc/broker", json.RawMessage(in)), &placed)
	if placed.File != "/run/secrets/keyring.json" || placed.Database.DSN != "/etc/broker/data/certs.db" {
		t.Errorf("placeholders became %+v", placed)
	}
	unset := `{"module":"msgbroker_sql","database":{"driver":"mysql","dsn":"x"},"encryption_key_file":"{env.MSGBROKER_TEST_UNSET_XYZ}"}`
	_ = json.Unmarshal(storageInDir("/etc/broker", json.RawMessage(unset)), &placed)
	if placed.File != "{env.MSGBROKER_TEST_UNSET_XYZ}" {
		t.Errorf("an unset placeholder became %q", placed.File)
	}
	t.Setenv("MSGBROKER_TEST_ROOT_ABS", "/srv/caddy")
	if got := root(storageInDir("/etc/broker", json.RawMessage(`{"module":"file_system","root":"{env.MSGBROKER_TEST_ROOT_ABS}"}`))); got != "/srv/caddy" {
		t.Errorf("a file_system root from a placeholder became %q", got)
	}
	var kept struct {
		LockTTL int64 `json:"lock_ttl"`
	}
	_ = json.Unmarshal(storageInDir("/etc/broker", json.RawMessage(`{"module":"msgbroker_sql","database":{"driver":"sqlite","dsn":"x.db"},"lock_ttl":5000000000}`)), &kept)
	if kept.LockTTL != 5000000000 {
		t.Errorf("moving the DSN lost lock_ttl: %+v", kept)
	}
}
