package msgbroker_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	_ "github.com/go-sql-driver/mysql"

	"github.com/msgbroker/caddy-msgbroker/internal/keyring"
	"github.com/msgbroker/caddy-msgbroker/internal/testcaddy"
	"github.com/msgbroker/caddy-msgbroker/modules/msgbroker"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

// repoRoot is the repository's root, for tests that change directory.
var repoRoot = func() string {
	wd, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	return filepath.Join(wd, "..", "..")
}()

// devConfig is an embedded-default style config rooted in dir.
func devConfig(dir string, port int, extra string) string {
	return fmt.Sprintf(`{
	pki {
		ca local {
			name "test CA"
		}
	}
	msgbroker {
		database sqlite %[1]s/msgbroker.db
		dev_keys %[1]s/secrets
		ca local
	}
}

http://127.0.0.1:%[2]d {
	handle /health {
		msgbroker_health
	}
	respond "%[3]s"
}
`, dir, port, extra)
}

func getHealth(t *testing.T, port int) (int, msgbroker.HealthReport) {
	t.Helper()
	var report msgbroker.HealthReport
	status := testcaddy.GetJSON(t, fmt.Sprintf("http://127.0.0.1:%d/health", port), &report)
	return status, report
}

func TestEmbeddedDefaultIsHealthyAndCreatesDevKeys(t *testing.T) {
	dir, port := t.TempDir(), testcaddy.FreePort(t)
	testcaddy.Start(t, devConfig(dir, port, "first"))

	status, report := getHealth(t, port)
	if status != http.StatusOK || report.Status != msgbroker.Healthy {
		t.Fatalf("health = %d %+v, want 200 healthy", status, report)
	}
	want := map[string]string{"database": "healthy", "redis": "disabled", "encryption": "healthy", "ca": "healthy"}
	for name, state := range want {
		if report.Components[name] != state {
			t.Errorf("component %s = %q, want %q (%v)", name, report.Components[name], state, report.Details)
		}
	}
	if report.Timestamp.IsZero() {
		t.Error("timestamp missing")
	}
	for _, name := range []string{"keyring.json", "hash_key", "jwt_secret"} {
		info, err := os.Stat(filepath.Join(dir, "secrets", name))
		if err != nil {
			t.Fatalf("development secret %s not created: %v", name, err)
		}
		if perm := info.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s has mode %o, want 600", name, perm)
		}
	}
}

func TestDevKeysSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	read := func() string {
		data, err := os.ReadFile(filepath.Join(dir, "secrets", "keyring.json"))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	port := testcaddy.FreePort(t)
	srv := testcaddy.Start(t, devConfig(dir, port, "one"))
	first := read()
	if err := srv.Reload(devConfig(dir, port, "two")); err != nil {
		t.Fatal(err)
	}
	if read() != first {
		t.Fatal("the development keyring was regenerated on reload; existing bodies would become unreadable")
	}
}

func TestHealthRejectsOtherMethods(t *testing.T) {
	dir, port := t.TempDir(), testcaddy.FreePort(t)
	testcaddy.Start(t, devConfig(dir, port, "x"))
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/health", port), "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Fatalf("POST /health = %d Allow=%q, want 405 with Allow", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

func TestValidateLeavesNoSideEffects(t *testing.T) {
	dir, port := t.TempDir(), testcaddy.FreePort(t)
	srv := &testcaddy.Server{AdminAddr: fmt.Sprintf("localhost:%d", testcaddy.FreePort(t)), StorageDir: filepath.Join(dir, "caddy"), T: t}
	cfgJSON, err := srv.Adapt(devConfig(filepath.Join(dir, "data"), port, "v"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg caddy.Config
	if err := caddy.StrictUnmarshalJSON(cfgJSON, &cfg); err != nil {
		t.Fatal(err)
	}
	if err := caddy.Validate(&cfg); err != nil {
		t.Fatalf("validate: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
		entries, _ := os.ReadDir(filepath.Join(dir, "data"))
		t.Fatalf("caddy validate created %s (%v)", filepath.Join(dir, "data"), entries)
	}
}

func TestProductionConfigNamesMissingSecrets(t *testing.T) {
	// The example's log directive opens logs/msgbroker.log relative to the
	// working directory.
	t.Chdir(t.TempDir())
	for _, v := range []string{"MSGBROKER_DB_DSN", "MSGBROKER_KEYRING", "MSGBROKER_HASH_KEY", "MSGBROKER_JWT_SECRET", "MSGBROKER_REDIS_ADDR"} {
		t.Setenv(v, "")
	}
	input, err := os.ReadFile(filepath.Join(repoRoot, "examples", "production.Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &testcaddy.Server{AdminAddr: fmt.Sprintf("localhost:%d", testcaddy.FreePort(t)), StorageDir: t.TempDir(), T: t}
	cfgJSON, err := srv.Adapt(string(input))
	if err != nil {
		t.Fatal(err)
	}
	var cfg caddy.Config
	if err := caddy.StrictUnmarshalJSON(cfgJSON, &cfg); err != nil {
		t.Fatal(err)
	}
	err = caddy.Validate(&cfg)
	if err == nil {
		t.Fatal("the production config started without secrets")
	}
	for _, name := range []string{"encryption_key_file", "hash_key", "jwt_secret", "{env.MSGBROKER_HASH_KEY}"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
}

func TestShortSecretsAreRefused(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TEST_HASH_KEY", "short")
	t.Setenv("TEST_JWT_SECRET", strings.Repeat("j", 40))
	srv := &testcaddy.Server{AdminAddr: fmt.Sprintf("localhost:%d", testcaddy.FreePort(t)), StorageDir: dir, T: t}
	cfgJSON, err := srv.Adapt(fmt.Sprintf(`{
	msgbroker {
		database sqlite %s/db.sqlite
		encryption_key_file %s/keyring.json
		hash_key {env.TEST_HASH_KEY}
		jwt_secret {env.TEST_JWT_SECRET}
	}
}
`, dir, dir))
	if err != nil {
		t.Fatal(err)
	}
	var cfg caddy.Config
	if err := caddy.StrictUnmarshalJSON(cfgJSON, &cfg); err != nil {
		t.Fatal(err)
	}
	if err := caddy.Validate(&cfg); err == nil || !strings.Contains(err.Error(), "hash_key must be at least") {
		t.Fatalf("validate = %v, want the short hash_key refused", err)
	}
}

// TestReloadsKeepMariaDBConnectionsFlat reloads through the admin API 20
// times and checks that the server sees the same connections afterwards:
// nothing reconnected, nothing leaked. The server numbers connections
// without reusing a number, so a pool reopened by a reload cannot pass for
// the old one (unlike file descriptors; see the SQLite test).
func TestReloadsKeepMariaDBConnectionsFlat(t *testing.T) {
	const maxOpenConns = 4
	dsn := storagetest.MySQL(t)
	dbName := dsnDatabase(t, dsn)
	t.Setenv("TEST_DB_DSN", dsn)
	dir, port := t.TempDir(), testcaddy.FreePort(t)
	config := func(i int) string {
		return fmt.Sprintf(`{
	msgbroker {
		database mysql {env.TEST_DB_DSN} {
			max_open_conns %d
			auto_migrate on
		}
		dev_keys %s/secrets
	}
}

http://127.0.0.1:%d {
	handle /health {
		msgbroker_health
	}
	respond "config %d"
}
`, maxOpenConns, dir, port, i)
	}
	srv := testcaddy.Start(t, config(0))
	if status, report := getHealth(t, port); status != http.StatusOK || report.Components["database"] != msgbroker.Healthy {
		t.Fatalf("health = %d %+v", status, report)
	}
	admin := adminDB(t)
	before := connectionIDs(t, admin, dbName)
	if len(before) == 0 {
		t.Fatal("no connection to the test database after the first health check")
	}
	for i := 1; i <= 20; i++ {
		if err := srv.Reload(config(i)); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		if status, _ := getHealth(t, port); status != http.StatusOK {
			t.Fatalf("health after reload %d = %d", i, status)
		}
	}
	// The pool may open a second connection when the registry's poll meets
	// a health check, but never beyond its limit (a pool per reload would
	// hold 21 pools' worth), and it must keep the connections it had.
	after := connectionIDs(t, admin, dbName)
	if len(after) > maxOpenConns {
		t.Errorf("connections grew from %d to %d over 20 reloads (pool limit %d)", len(before), len(after), maxOpenConns)
	}
	for id := range before {
		if !after[id] {
			t.Errorf("connection %d was closed by a reload (before %v, after %v)", id, before, after)
		}
	}
}

// TestReloadKeepsMetricsRegistered checks that the broker's collectors are on
// the metrics endpoint after reloads, without a duplicate-registration
// failure, and that counters keep counting across them.
func TestReloadKeepsMetricsRegistered(t *testing.T) {
	dir, port := t.TempDir(), testcaddy.FreePort(t)
	srv := testcaddy.Start(t, devConfig(dir, port, "a"))
	getHealth(t, port)
	getHealth(t, port)
	first := healthCheckCount(t, srv)
	if first < 2 {
		t.Fatalf("msgbroker_health_checks_total = %v after two checks", first)
	}
	for i := 0; i < 3; i++ {
		if err := srv.Reload(devConfig(dir, port, strconv.Itoa(i))); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
	}
	getHealth(t, port)
	if got := healthCheckCount(t, srv); got != first+1 {
		t.Fatalf("after reloads the counter is %v, want %v (it must survive reloads)", got, first+1)
	}
}

var healthCounterLine = regexp.MustCompile(`(?m)^msgbroker_health_checks_total\{status="healthy"\} (\d+)`)

func healthCheckCount(t *testing.T, srv *testcaddy.Server) float64 {
	t.Helper()
	status, body, err := srv.AdminGet("/metrics")
	if err != nil || status != http.StatusOK {
		t.Fatalf("GET /metrics = %d, %v", status, err)
	}
	if !strings.Contains(string(body), "msgbroker_db_connections") {
		t.Error("msgbroker_db_connections missing from /metrics")
	}
	m := healthCounterLine.FindSubmatch(body)
	if m == nil {
		t.Fatalf("msgbroker_health_checks_total missing from /metrics")
	}
	n, _ := strconv.ParseFloat(string(m[1]), 64)
	return n
}

func adminDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", "root@tcp(127.0.0.1:3306)/")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func connectionIDs(t *testing.T, db *sql.DB, dbName string) map[int64]bool {
	t.Helper()
	rows, err := db.QueryContext(context.Background(),
		"SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ?", dbName)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	ids := map[int64]bool{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids[id] = true
	}
	return ids
}

func dsnDatabase(t *testing.T, dsn string) string {
	t.Helper()
	_, rest, ok := strings.Cut(dsn, ")/")
	if !ok {
		t.Fatalf("unexpected DSN shape %q", dsn)
	}
	name, _, _ := strings.Cut(rest, "?")
	return name
}

// TestHealthIs503WhenTheDatabaseRefusesConnections locks the gateway's
// database account and kills its connections: the next check must report
// the database unhealthy with a 503, and recover once the account is open.
func TestHealthIs503WhenTheDatabaseRefusesConnections(t *testing.T) {
	dsn := storagetest.MySQL(t)
	dbName := dsnDatabase(t, dsn)
	admin := adminDB(t)
	user := "hc_" + dbName[len(dbName)-8:]
	for _, stmt := range []string{
		fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY 'pw-%s'", user, user),
		fmt.Sprintf("GRANT ALL ON %s.* TO '%s'@'%%'", dbName, user),
	} {
		if _, err := admin.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _, _ = admin.Exec(fmt.Sprintf("DROP USER '%s'@'%%'", user)) })
	t.Setenv("TEST_DB_DSN", fmt.Sprintf("%s:pw-%s@tcp(127.0.0.1:3306)/%s", user, user, dbName))

	dir, port := t.TempDir(), testcaddy.FreePort(t)
	testcaddy.Start(t, fmt.Sprintf(`{
	msgbroker {
		database mysql {env.TEST_DB_DSN} {
			auto_migrate on
		}
		dev_keys %s/secrets
	}
}

http://127.0.0.1:%d {
	handle /health {
		msgbroker_health
	}
}
`, dir, port))
	if status, report := getHealth(t, port); status != http.StatusOK || report.Components["database"] != msgbroker.Healthy {
		t.Fatalf("before = %d %+v", status, report)
	}
	if _, err := admin.Exec(fmt.Sprintf("ALTER USER '%s'@'%%' ACCOUNT LOCK", user)); err != nil {
		t.Fatal(err)
	}
	for id := range connectionIDs(t, admin, dbName) {
		_, _ = admin.Exec(fmt.Sprintf("KILL %d", id))
	}
	status, report := getHealth(t, port)
	if status != http.StatusServiceUnavailable || report.Status != msgbroker.Unhealthy || report.Components["database"] != msgbroker.Unhealthy {
		t.Fatalf("with the database refusing = %d %+v, want 503 unhealthy", status, report)
	}
	if report.Details["database"] == "" || strings.Contains(report.Details["database"], user) {
		t.Errorf("details must explain without naming the account: %q", report.Details["database"])
	}
	if _, err := admin.Exec(fmt.Sprintf("ALTER USER '%s'@'%%' ACCOUNT UNLOCK", user)); err != nil {
		t.Fatal(err)
	}
	if status, _ := getHealth(t, port); status != http.StatusOK {
		t.Fatalf("after unlocking = %d, want 200", status)
	}
}

// TestHealthIsDegradedWithoutRedis points Redis at a closed port: the node
// keeps serving (200) but reports itself degraded.
func TestHealthIsDegradedWithoutRedis(t *testing.T) {
	dir, port := t.TempDir(), testcaddy.FreePort(t)
	closed := testcaddy.FreePort(t)
	testcaddy.Start(t, fmt.Sprintf(`{
	msgbroker {
		database sqlite %[1]s/db.sqlite
		redis 127.0.0.1:%[3]d
		dev_keys %[1]s/secrets
	}
}

http://127.0.0.1:%[2]d {
	handle /health {
		msgbroker_health
	}
}
`, dir, port, closed))
	status, report := getHealth(t, port)
	if status != http.StatusOK || report.Status != msgbroker.Degraded || report.Components["redis"] != msgbroker.Unhealthy {
		t.Fatalf("health = %d %+v, want 200 degraded with redis unhealthy", status, report)
	}
}

// TestKeyringChangesAreLoadedWithoutReload adds a key to the keyring file,
// as `caddy msgbroker keys rotate` does, and waits for the running app to
// encrypt with it.
func TestKeyringChangesAreLoadedWithoutReload(t *testing.T) {
	dir, port := t.TempDir(), testcaddy.FreePort(t)
	testcaddy.Start(t, devConfig(dir, port, "k"))
	getHealth(t, port)
	app := runningApp(t)
	path := filepath.Join(dir, "secrets", "keyring.json")
	kr, err := keyring.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	key, err := keyring.Generate("")
	if err != nil {
		t.Fatal(err)
	}
	if err := kr.Add(key); err != nil {
		t.Fatal(err)
	}
	if err := keyring.WriteFile(path, kr); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for services(t, app).Keyring().PrimaryID() != key.ID() {
		if time.Now().After(deadline) {
			t.Fatalf("the app still encrypts with %s, not the new key %s", services(t, app).Keyring().PrimaryID(), key.ID())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func runningApp(t *testing.T) *msgbroker.App {
	t.Helper()
	app, err := caddy.ActiveContext().App(msgbroker.AppName)
	if err != nil {
		t.Fatal(err)
	}
	return app.(*msgbroker.App)
}

func services(t *testing.T, app *msgbroker.App) *msgbroker.Services {
	t.Helper()
	s, err := app.Services(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}
