package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/msgbroker/caddy-msgbroker/internal/keyring"
	"github.com/msgbroker/caddy-msgbroker/internal/testcaddy"
	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

// The CLI tests run the real binary, built once per test run, as an
// operator would: `caddy msgbroker … --config Caddyfile`, and check both
// what it prints and what it changed in the database.

var (
	cliBuildOnce sync.Once
	cliBinPath   string
	cliBuildErr  error
)

// cliBinary builds ./xcaddy once. The binary goes to a fixed place in the
// temporary directory, written under a temporary name and renamed, so
// repeated runs reuse Go's build cache and leave nothing else behind.
func cliBinary(t *testing.T) string {
	t.Helper()
	cliBuildOnce.Do(func() {
		// One directory per checkout: worktrees on one machine build
		// different code, and a shared path let one test run execute
		// another checkout's binary.
		root, err := filepath.Abs("..")
		if err != nil {
			cliBuildErr = err
			return
		}
		sum := sha256.Sum256([]byte(root))
		dir := filepath.Join(os.TempDir(), "msgbroker-cli-test-"+hex.EncodeToString(sum[:4]))
		if cliBuildErr = os.MkdirAll(dir, 0o700); cliBuildErr != nil {
			return
		}
		name := "caddy"
		if runtime.GOOS == "windows" {
			name += ".exe"
		}
		tmp, err := os.CreateTemp(dir, name+".*.tmp")
		if err != nil {
			cliBuildErr = err
			return
		}
		tmp.Close()
		cmd := exec.Command("go", "build", "-o", tmp.Name(), "./xcaddy")
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			_ = os.Remove(tmp.Name())
			cliBuildErr = fmt.Errorf("go build ./xcaddy: %v\n%s", err, out)
			return
		}
		cliBinPath = filepath.Join(dir, name)
		cliBuildErr = os.Rename(tmp.Name(), cliBinPath)
	})
	if cliBuildErr != nil {
		t.Fatalf("building the binary: %v", cliBuildErr)
	}
	return cliBinPath
}

// cliEnv is a directory with a Caddyfile, its database and keys.
type cliEnv struct {
	t         *testing.T
	dialect   string
	dir       string
	caddyfile string
	dsn       string // the mysql DSN, passed as {env.MSGBROKER_CLI_DSN}
	env       []string
	mtlsPort  int
	adminPort int

	dbOnce sync.Once
	store  *storage.Store
}

// cliEachDialect runs fn on a fresh environment on SQLite and on MariaDB.
func cliEachDialect(t *testing.T, fn func(t *testing.T, e *cliEnv)) {
	for _, dialect := range []string{storage.DriverSQLite, storage.DriverMySQL} {
		t.Run(dialect, func(t *testing.T) {
			fn(t, newCLIEnv(t, dialect))
		})
	}
}

// newCLIEnv writes a Caddyfile like an operator's: file storage and a
// local CA, the database of the dialect (MariaDB through an {env.*}
// placeholder, with auto_migrate off as in production), and development
// keys, which it creates as the gateway's first start would.
func newCLIEnv(t *testing.T, dialect string) *cliEnv {
	t.Helper()
	cliBinary(t)
	dir := t.TempDir()
	e := &cliEnv{t: t, dialect: dialect, dir: dir, caddyfile: filepath.Join(dir, "Caddyfile")}
	e.env = append(os.Environ(),
		"XDG_DATA_HOME="+filepath.Join(dir, "xdg-data"),
		"XDG_CONFIG_HOME="+filepath.Join(dir, "xdg-config"))
	database := "database sqlite " + filepath.Join(dir, "data", "msgbroker.db")
	if dialect == storage.DriverMySQL {
		e.dsn = storagetest.MySQL(t)
		e.env = append(e.env, "MSGBROKER_CLI_DSN="+e.dsn)
		database = "database mysql {env.MSGBROKER_CLI_DSN}"
	}
	e.mtlsPort, e.adminPort = testcaddy.FreePort(t), testcaddy.FreePort(t)
	caddyfile := fmt.Sprintf(`{
	admin 127.0.0.1:%d
	skip_install_trust
	# No HTTP->HTTPS redirect listener on :80, which only root may bind.
	auto_https disable_redirects
	storage file_system %s
	pki {
		ca local {
			name "CLI test CA"
		}
	}
	msgbroker {
		%s
		dev_keys %s
		revocation_poll_interval 200ms
	}
}

%s`, e.adminPort, filepath.Join(dir, "caddy"), database, e.secretsDir(), internalSite(e.mtlsPort))
	if err := os.WriteFile(e.caddyfile, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	e.createDevKeys()
	return e
}

func (e *cliEnv) secretsDir() string { return filepath.Join(e.dir, "secrets") }

func (e *cliEnv) keyringPath() string { return filepath.Join(e.secretsDir(), "keyring.json") }

// createDevKeys makes what `dev_keys` makes at the gateway's first start.
func (e *cliEnv) createDevKeys() {
	e.t.Helper()
	if _, _, err := keyring.CreateIfMissing(e.keyringPath()); err != nil {
		e.t.Fatal(err)
	}
	for _, name := range []string{"hash_key", "jwt_secret"} {
		raw := make([]byte, 32)
		_, _ = rand.Read(raw)
		if err := os.WriteFile(filepath.Join(e.secretsDir(), name), []byte(base64.RawURLEncoding.EncodeToString(raw)+"\n"), 0o600); err != nil {
			e.t.Fatal(err)
		}
	}
}

// cliResult is what one run of the binary did.
type cliResult struct {
	code   int
	stdout string
	stderr string
}

func (r cliResult) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// cli runs `caddy msgbroker args… --config Caddyfile` with stdin (never a
// terminal) and returns its exit code and output.
func (e *cliEnv) cli(stdin string, args ...string) cliResult {
	e.t.Helper()
	return e.cliIn(e.dir, stdin, args...)
}

// cliIn runs the CLI as cli does, from the working directory dir.
func (e *cliEnv) cliIn(dir, stdin string, args ...string) cliResult {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cliBinary(e.t), append(append([]string{"msgbroker"}, args...), "--config", e.caddyfile)...)
	cmd.Dir = dir
	cmd.Env = e.env
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := cliResult{stdout: stdout.String(), stderr: cliStripLogs(stderr.String())}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		res.code = exitErr.ExitCode()
	default:
		e.t.Fatalf("running caddy msgbroker %s: %v", strings.Join(args, " "), err)
	}
	return res
}

// cliStripLogs drops the JSON log lines Caddy's config loading writes to
// stderr, leaving what the command itself printed.
func cliStripLogs(s string) string {
	var kept []string
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, `{"level":`) {
			continue
		}
		kept = append(kept, line)
	}
	return strings.Join(kept, "\n")
}

// ok runs the CLI and fails the test unless it exits 0.
func (e *cliEnv) ok(stdin string, args ...string) cliResult {
	e.t.Helper()
	res := e.cli(stdin, args...)
	if res.code != 0 {
		e.t.Fatalf("caddy msgbroker %s: %s", strings.Join(args, " "), res)
	}
	return res
}

// fails runs the CLI and fails the test unless it exits with code and
// says want on stderr.
func (e *cliEnv) fails(code int, want string, stdin string, args ...string) cliResult {
	e.t.Helper()
	res := e.cli(stdin, args...)
	if res.code != code || !strings.Contains(res.stderr, want) {
		e.t.Fatalf("caddy msgbroker %s: want exit %d and %q on stderr, got %s", strings.Join(args, " "), code, want, res)
	}
	return res
}

// json runs the CLI with --json and decodes its output into v.
func (e *cliEnv) json(v any, args ...string) {
	e.t.Helper()
	res := e.ok("", append(args, "--json")...)
	if err := json.Unmarshal([]byte(res.stdout), v); err != nil {
		e.t.Fatalf("caddy msgbroker %s --json: %v\n%s", strings.Join(args, " "), err, res.stdout)
	}
}

// db opens the environment's database from the test, to check effects.
func (e *cliEnv) db() *storage.Store {
	e.t.Helper()
	e.dbOnce.Do(func() {
		cfg := storage.Config{Driver: e.dialect, DSN: e.dsn}
		if e.dialect == storage.DriverSQLite {
			cfg.DSN = filepath.Join(e.dir, "data", "msgbroker.db")
		}
		db, err := storage.Open(context.Background(), cfg)
		if err != nil {
			e.t.Fatal(err)
		}
		e.t.Cleanup(func() { db.Close() })
		e.store = storage.New(db)
	})
	return e.store
}

// migrated brings the schema up with `migrate up`, so the test can write
// to the database before the first command (SQLite would otherwise migrate
// at the first command, MariaDB never on its own).
func (e *cliEnv) migrated() *cliEnv {
	e.t.Helper()
	e.ok("", "migrate", "up")
	return e
}

// lastAudit returns the newest audit entry with the given action.
func (e *cliEnv) lastAudit(action string) storage.AuditEntry {
	e.t.Helper()
	entries, err := e.db().Audit.List(context.Background(), storage.AuditFilter{Action: action, Limit: 1})
	if err != nil || len(entries) == 0 {
		e.t.Fatalf("no audit entry %s (%v)", action, err)
	}
	return entries[0]
}

// cliMatch reports whether line matches the regular expression.
func cliMatch(pattern, line string) bool {
	return regexp.MustCompile(pattern).MatchString(line)
}

func TestCLIUsageErrorsExitTwo(t *testing.T) {
	e := newCLIEnv(t, storage.DriverSQLite)
	cases := []struct {
		args []string
		want string
	}{
		{nil, "needs a subcommand"},
		{[]string{"bogus"}, `unknown command "bogus"`},
		{[]string{"user"}, "needs a subcommand"},
		{[]string{"user", "create"}, "needs 1 argument"},
		{[]string{"user", "list", "--nope"}, "unknown flag: --nope"},
		{[]string{"user", "create", "a@example.com", "--role", "root", "--password-stdin"}, "--role must be admin or user"},
		{[]string{"cert", "issue", "proxy-1"}, "--role must be proxy or worker"},
		{[]string{"cert", "revoke", "proxy-1", "--force"}, "--reason is required"},
		{[]string{"cert", "list", "--status", "lost"}, "--status must be active, revoked or expired"},
		{[]string{"message", "list", "--limit", "0"}, "--limit must be between 1 and 1000"},
		{[]string{"message", "list", "--status", "gone"}, "--status must be one of"},
		{[]string{"message", "list", "--since", "yesterday"}, "is not an RFC 3339 time"},
		{[]string{"message", "view", "not-a-uuid"}, "message_id must be a UUID"},
		{[]string{"migrate", "down", "zero"}, "N must be a positive number"},
		{[]string{"keys", "rotate", "--batch-size", "0"}, "--batch-size must be at least 1"},
		{[]string{"device", "add", "u1", "d1", "--status", "maybe"}, "--status must be on or off"},
	}
	for _, c := range cases {
		res := e.fails(2, c.want, "", c.args...)
		if !strings.Contains(res.stderr, "--help' for usage") {
			t.Errorf("%v: no usage hint: %s", c.args, res)
		}
	}
	if res := e.ok("", "--help"); !strings.Contains(res.stdout, "Available Commands") {
		t.Fatalf("--help: %s", res)
	}
	// A missing config is the operator's mistake too.
	e.caddyfile = filepath.Join(e.dir, "missing.Caddyfile")
	e.fails(1, "loading config", "", "stats")
}

func TestCLIMigrate(t *testing.T) {
	cliEachDialect(t, func(t *testing.T, e *cliEnv) {
		ctx := context.Background()
		if e.dialect == storage.DriverMySQL {
			// auto_migrate is off for MySQL: commands point at migrate up.
			e.fails(1, "pending migration(s); apply them with 'caddy msgbroker migrate up'", "", "user", "list")
			var states []struct{ Name, Status string }
			e.json(&states, "migrate", "status")
			if len(states) != 7 || slices.ContainsFunc(states, func(s struct{ Name, Status string }) bool { return s.Status != "pending" }) {
				t.Fatalf("status before up: %+v", states)
			}
			res := e.ok("", "migrate", "up")
			if res.stdout != "Applied 0001_base_schema\nApplied 0002_query_indexes\nApplied 0003_health_probe\nApplied 0004_portal_hardening\nApplied 0005_stats_rollup_audit_indexes\nApplied 0006_stats_shards\nApplied 0007_certmagic_long_keys\n" {
				t.Fatalf("migrate up: %s", res)
			}
		} else {
			// SQLite migrates itself, like the gateway at start.
			res := e.ok("", "user", "list")
			if !strings.Contains(res.stderr, "Applied migrations (auto_migrate): 0001_base_schema, 0002_query_indexes, 0003_health_probe, 0004_portal_hardening, 0005_stats_rollup_audit_indexes, 0006_stats_shards, 0007_certmagic_long_keys") {
				t.Fatalf("user list on a new database: %s", res)
			}
		}
		if res := e.ok("", "migrate", "up"); res.stdout != "The database schema is up to date.\n" {
			t.Fatalf("second migrate up: %s", res)
		}
		res := e.ok("", "migrate", "status")
		lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
		if len(lines) != 8 || !strings.HasPrefix(lines[0], "MIGRATION                        STATUS   APPLIED AT") ||
			!strings.HasPrefix(lines[1], "0001_base_schema                 applied  20") || !strings.HasPrefix(lines[2], "0002_query_indexes               applied  20") ||
			!strings.HasPrefix(lines[3], "0003_health_probe                applied  20") ||
			!strings.HasPrefix(lines[4], "0004_portal_hardening            applied  20") ||
			!strings.HasPrefix(lines[5], "0005_stats_rollup_audit_indexes  applied  20") ||
			!strings.HasPrefix(lines[6], "0006_stats_shards                applied  20") ||
			!strings.HasPrefix(lines[7], "0007_certmagic_long_keys         applied  20") {
			t.Fatalf("migrate status:\n%s", res)
		}

		e.fails(2, "refusing to proceed without confirmation (stdin is not a terminal; pass --force)", "y\n", "migrate", "down")
		if applied := cliApplied(t, e); applied != 7 {
			t.Fatalf("%d migrations applied after a refused rollback, want 7", applied)
		}
		if res := e.ok("", "migrate", "down", "--force"); res.stdout != "Rolled back 0007_certmagic_long_keys\n" {
			t.Fatalf("migrate down: %s", res)
		}
		states, err := storage.MigrationStatus(ctx, e.db().DB)
		if err != nil || states[5].Applied != true || states[6].Applied != false {
			t.Fatalf("status after down: %+v, %v", states, err)
		}
		var up struct{ Applied []string }
		e.json(&up, "migrate", "up")
		if len(up.Applied) != 1 || up.Applied[0] != "0007_certmagic_long_keys" {
			t.Fatalf("migrate up --json: %+v", up)
		}
		var down struct {
			RolledBack []string `json:"rolled_back"`
		}
		e.json(&down, "migrate", "down", "7", "--force")
		if len(down.RolledBack) != 7 || cliApplied(t, e) != 0 {
			t.Fatalf("migrate down 7: %+v, %d applied", down, cliApplied(t, e))
		}
		cliTableGone(t, e, "users")
	})
}

func cliApplied(t *testing.T, e *cliEnv) int {
	t.Helper()
	states, err := storage.MigrationStatus(context.Background(), e.db().DB)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range states {
		if s.Applied {
			n++
		}
	}
	return n
}

// cliTableGone fails unless selecting from table fails (it was dropped).
func cliTableGone(t *testing.T, e *cliEnv, table string) {
	t.Helper()
	if _, err := e.db().DB.NewSelect().Table(table).Count(context.Background()); err == nil {
		t.Fatalf("table %s still exists after rolling back every migration", table)
	}
}

func TestCLIUsers(t *testing.T) {
	cliEachDialect(t, func(t *testing.T, e *cliEnv) {
		e.migrated()
		ctx := context.Background()
		res := e.ok("supersecret1\n", "user", "create", "Admin@Example.com", "--role", "admin", "--password-stdin")
		if res.stdout != "Created user 1 admin@example.com (admin).\n" {
			t.Fatalf("user create: %s", res)
		}
		admin, err := e.db().Users.GetByEmail(ctx, "admin@example.com")
		if err != nil || admin.Role != storage.RoleAdmin || !admin.IsActive {
			t.Fatalf("created admin: %+v, %v", admin, err)
		}
		if bcrypt.CompareHashAndPassword([]byte(admin.PasswordHash), []byte("supersecret1")) != nil {
			t.Fatal("the stored hash does not match the password from stdin")
		}
		if cost, _ := bcrypt.Cost([]byte(admin.PasswordHash)); cost != 12 {
			t.Fatalf("bcrypt cost %d, want 12", cost)
		}
		if a := e.lastAudit("user.create"); a.Actor != "cli" || a.Outcome != storage.AuditSuccess || !strings.Contains(a.Target, "admin@example.com") {
			t.Fatalf("audit entry: %+v", a)
		}

		e.fails(2, "stdin is not a terminal to type a password on; pass it with --password-stdin", "", "user", "create", "x@example.com")
		e.fails(2, "a password needs at least 8 characters", "short\n", "user", "create", "x@example.com", "--password-stdin")
		e.fails(2, "is not an email address", "supersecret1\n", "user", "create", "not-an-email", "--password-stdin")
		e.fails(1, "a user with email admin@example.com already exists", "supersecret1\n", "user", "create", "admin@example.com", "--password-stdin")
		if n := len(cliUsers(t, e)); n != 1 {
			t.Fatalf("%d users after refused creations, want 1", n)
		}

		e.ok("another-pass\n", "user", "create", "bob@example.com", "--client", "proxy-1", "--password-stdin")
		// MariaDB spends an id on every refused insert, so look it up.
		bob, err := e.db().Users.GetByEmail(ctx, "bob@example.com")
		if err != nil {
			t.Fatal(err)
		}
		bobID := fmt.Sprint(bob.ID)
		// Admins see lockouts: two wrong passwords, then a lock.
		for range 2 {
			if _, err := e.db().Users.RecordLoginFailure(ctx, bob.ID, 5, time.Minute, time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.db().Users.LockUntil(ctx, bob.ID, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		res = e.ok("", "user", "list")
		lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
		if len(lines) != 3 ||
			!cliMatch(`^ID\s+EMAIL\s+ROLE\s+CLIENT\s+STATUS\s+LAST LOGIN\s+CREATED$`, lines[0]) ||
			!cliMatch(`^1\s+admin@example\.com\s+admin\s+-\s+active\s+-\s+20\d\d-`, lines[1]) ||
			!cliMatch(`^`+bobID+`\s+bob@example\.com\s+user\s+proxy-1\s+locked\s+-\s+20\d\d-`, lines[2]) {
			t.Fatalf("user list:\n%s", res.stdout)
		}
		var listed []map[string]any
		e.json(&listed, "user", "list")
		if len(listed) != 2 || listed[1]["email"] != "bob@example.com" || listed[1]["client_id"] != "proxy-1" ||
			listed[1]["failed_logins"] != 2.0 || listed[1]["locked_until"] == nil || listed[0]["failed_logins"] != 0.0 {
			t.Fatalf("user list --json: %v", listed)
		}
		if _, leaked := listed[0]["password_hash"]; leaked || strings.Contains(fmt.Sprint(listed), "$2a$") {
			t.Fatalf("user list --json shows the password hash: %v", listed)
		}

		e.fails(1, "is the last active administrator", "", "user", "delete", "1", "--force")
		if _, err := e.db().Users.GetByID(ctx, 1); err != nil {
			t.Fatalf("the last admin was deleted: %v", err)
		}
		if a := e.lastAudit("user.delete"); a.Actor != "cli" || a.Outcome != storage.AuditFailure {
			t.Fatalf("audit entry of the refused delete: %+v", a)
		}
		e.fails(2, "refusing to proceed without confirmation", "y\n", "user", "delete", bobID)
		if _, err := e.db().Users.GetByID(ctx, bob.ID); err != nil {
			t.Fatalf("deleted without confirmation: %v", err)
		}
		if res := e.ok("", "user", "delete", "bob@example.com", "--force"); res.stdout != "Deleted user "+bobID+" bob@example.com.\n" {
			t.Fatalf("user delete: %s", res)
		}
		if _, err := e.db().Users.GetByID(ctx, bob.ID); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("user %s after delete: %v", bobID, err)
		}
		e.fails(1, "no user "+bobID, "", "user", "delete", bobID, "--force")

		if res := e.ok("brand-new-pass\n", "user", "password", "1", "--password-stdin"); res.stdout != "Changed the password of user 1 admin@example.com.\n" {
			t.Fatalf("user password: %s", res)
		}
		admin, _ = e.db().Users.GetByID(ctx, 1)
		if bcrypt.CompareHashAndPassword([]byte(admin.PasswordHash), []byte("brand-new-pass")) != nil {
			t.Fatal("the new password does not match the stored hash")
		}
		e.fails(2, "a password needs at least 8 characters", "short\n", "user", "password", "1", "--password-stdin")
		e.fails(1, "no user 99", "brand-new-pass\n", "user", "password", "99", "--password-stdin")
		if a := e.lastAudit("user.password"); a.Actor != "cli" || strings.Contains(fmt.Sprint(a.Details), "brand-new-pass") {
			t.Fatalf("audit entry: %+v", a)
		}
	})
}

func cliUsers(t *testing.T, e *cliEnv) []storage.User {
	t.Helper()
	users, err := e.db().Users.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return users
}

func TestCLIDevices(t *testing.T) {
	cliEachDialect(t, func(t *testing.T, e *cliEnv) {
		e.migrated()
		ctx := context.Background()
		if res := e.ok("", "device", "add", "42", "phone-1", "--name", "Anna's phone"); res.stdout != "Added device phone-1 of user 42 (on).\n" {
			t.Fatalf("device add: %s", res)
		}
		e.ok("", "device", "add", "42", "tablet", "--status", "off")
		e.ok("", "device", "add", "7", "watch")
		d, err := e.db().Devices.Get(ctx, "42", "phone-1")
		if err != nil || d.Name != "Anna's phone" || d.Status != storage.DeviceOn {
			t.Fatalf("stored device: %+v, %v", d, err)
		}
		if a := e.lastAudit("device.add"); a.Actor != "cli" || a.Target != "7/watch" || a.Outcome != storage.AuditSuccess {
			t.Fatalf("audit entry: %+v", a)
		}
		e.fails(1, "device phone-1 of user 42 already exists", "", "device", "add", "42", "phone-1")

		res := e.ok("", "device", "list", "--user", "42")
		lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
		if len(lines) != 3 || !cliMatch(`^USER ID\s+DEVICE ID\s+NAME\s+STATUS\s+CREATED$`, lines[0]) ||
			!cliMatch(`^42\s+phone-1\s+Anna's phone\s+on\s+20`, lines[1]) || !cliMatch(`^42\s+tablet\s+-\s+off\s+20`, lines[2]) {
			t.Fatalf("device list:\n%s", res.stdout)
		}
		var all []struct{ UserID, DeviceID, Status string }
		e.json(&all, "device", "list")
		if len(all) != 3 {
			t.Fatalf("device list --json: %+v", all)
		}

		e.fails(2, "refusing to proceed without confirmation", "", "device", "remove", "42", "tablet")
		if res := e.ok("", "device", "remove", "42", "tablet", "--force"); res.stdout != "Removed device tablet of user 42.\n" {
			t.Fatalf("device remove: %s", res)
		}
		if _, err := e.db().Devices.Get(ctx, "42", "tablet"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("device after remove: %v", err)
		}
		if a := e.lastAudit("device.remove"); a.Actor != "cli" || a.Target != "42/tablet" {
			t.Fatalf("audit entry: %+v", a)
		}
		e.fails(1, "user 42 has no device tablet", "", "device", "remove", "42", "tablet", "--force")
	})
}

// The CLI hashes with the config's bcrypt cost, as the gateway does, and
// refuses device names and ids with control characters.
func TestCLIUsesTheConfiguredBcryptCostAndRefusesControlCharacters(t *testing.T) {
	e := newCLIEnv(t, storage.DriverSQLite)
	cfg, err := os.ReadFile(e.caddyfile)
	if err != nil {
		t.Fatal(err)
	}
	cfg = bytes.Replace(cfg, []byte("revocation_poll_interval 200ms"), []byte("revocation_poll_interval 200ms\n\t\tlogin {\n\t\t\tbcrypt_cost 5\n\t\t}"), 1)
	if err := os.WriteFile(e.caddyfile, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	e.migrated()
	e.ok("a long enough password\n", "user", "create", "ann@example.com", "--password-stdin")
	u, err := e.db().Users.GetByEmail(context.Background(), "ann@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if cost, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil || cost != 5 {
		t.Fatalf("user create hashed at cost %d (%v), want the config's 5", cost, err)
	}
	for _, args := range [][]string{
		{"device", "add", "42", "phone", "--name", "Anna\x01s phone"},
		{"device", "add", "42", "phone", "--name", "Anna\u0085s phone"},
		{"device", "add", "42", "phone", "--name", "Anna\xffs phone"},
		{"device", "add", "42", "pho\tne"},
		{"device", "add", "4\n2", "phone"},
	} {
		e.fails(2, "without control characters", "", args...)
	}
	e.ok("", "device", "add", "42", "phone", "--name", strings.Repeat("é", 64))
}

func TestCLIStatsLayout(t *testing.T) {
	cliEachDialect(t, func(t *testing.T, e *cliEnv) {
		e.migrated()
		ctx := context.Background()
		now := time.Now().UTC()
		// 1,234 delivered in the last day, 3 queued two days ago, 2
		// failed ten days ago.
		// Inserted through the repository, which keeps the counters the
		// statistics read.
		var msgs []*storage.Message
		add := func(n int, status string, age time.Duration) {
			for range n {
				i := len(msgs)
				at := now.Add(-age)
				msgs = append(msgs, &storage.Message{
					MessageID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), ClientID: "proxy-1",
					SenderNumberHash: fmt.Sprintf("%064d", i), SenderNumberMasked: "+4915****0000",
					BodyEncrypted: []byte{1}, EncryptionKeyID: "k", PayloadHash: fmt.Sprintf("%064d", i),
					Status: status, QueuedAt: at, CreatedAt: at, UpdatedAt: at,
				})
			}
		}
		add(1234, storage.MessageDelivered, time.Hour)
		add(3, storage.MessageQueued, 48*time.Hour)
		add(2, storage.MessageFailed, 240*time.Hour)
		if err := e.db().Messages.InsertMany(ctx, msgs); err != nil {
			t.Fatal(err)
		}
		for i, status := range []string{storage.ClientActive, storage.ClientActive, storage.ClientRevoked} {
			if err := e.db().Clients.Insert(ctx, &storage.Client{ClientID: "proxy-1", SerialNumber: fmt.Sprintf("a%d", i),
				FingerprintSHA256: fmt.Sprintf("%064d", i), Role: storage.ClientRoleProxy, Status: status, Subject: "CN=proxy-1",
				NotAfter: now.Add(24 * time.Hour), CreatedBy: "test"}); err != nil {
				t.Fatal(err)
			}
		}
		e.ok("supersecret1\n", "user", "create", "admin@example.com", "--role", "admin", "--password-stdin")

		want := `System Statistics
==================================================

Messages:
  Total: 1,239
  Queued: 3
  Processing: 0
  Retrying: 0
  Delivered: 1,234
  Failed: 2
  Last 24 hours: 1,234
  Last 7 days: 1,237

Clients:
  Total: 3
  Active: 2
  Revoked: 1
  Expired: 0

Users:
  Total: 1
  Admins: 1
`
		if res := e.ok("", "stats"); res.stdout != want {
			t.Fatalf("stats:\n%s\nwant:\n%s", res.stdout, want)
		}
		var s struct {
			Messages struct {
				Total     int64
				Delivered int64
				Last7d    int64 `json:"last_7_days"`
			}
		}
		e.json(&s, "stats")
		if s.Messages.Total != 1239 || s.Messages.Delivered != 1234 || s.Messages.Last7d != 1237 {
			t.Fatalf("stats --json: %+v", s)
		}
	})
}

// createCA has Caddy's pki app create the local CA in the environment's
// storage, as the gateway's first start would: `caddy validate` provisions
// it.
func (e *cliEnv) createCA() {
	e.t.Helper()
	cmd := exec.Command(cliBinary(e.t), "validate", "--config", e.caddyfile)
	cmd.Dir, cmd.Env = e.dir, e.env
	if out, err := cmd.CombinedOutput(); err != nil {
		e.t.Fatalf("caddy validate: %v\n%s", err, out)
	}
}

// An operator runs the CLI from anywhere with an absolute --config: the
// config's relative paths (database, dev_keys, storage) must mean the
// config's directory, not create a new, empty database where the operator
// happens to stand.
func TestCLIRelativePathsInTheConfigMeanItsDirectory(t *testing.T) {
	e := newCLIEnv(t, storage.DriverSQLite)
	caddyfile, err := os.ReadFile(e.caddyfile)
	if err != nil {
		t.Fatal(err)
	}
	relative := strings.ReplaceAll(string(caddyfile), e.dir+string(filepath.Separator), "./")
	if err := os.WriteFile(e.caddyfile, []byte(relative), 0o600); err != nil {
		t.Fatal(err)
	}
	e.createCA()
	e.migrated()

	elsewhere := t.TempDir()
	certDir := filepath.Join(elsewhere, "certs")
	res := e.cliIn(elsewhere, "", "cert", "issue", "proxy-1", "--role", "proxy", "--out", certDir)
	database := filepath.Join(e.dir, "data", "msgbroker.db")
	if res.code != 0 || !strings.Contains(res.stderr, "Database: sqlite "+database+"\n") {
		t.Fatalf("cert issue from another directory: %s", res)
	}
	if rows, err := e.db().Clients.ListFilter(context.Background(), "", "proxy-1"); err != nil || len(rows) != 1 {
		t.Fatalf("certificates of proxy-1 in the config's database: %v, %v", rows, err)
	}
	// Only what was asked for is written where the CLI ran.
	entries, err := os.ReadDir(elsewhere)
	if err != nil || len(entries) != 1 || entries[0].Name() != "certs" {
		t.Fatalf("the working directory holds %v (%v), want only certs", entries, err)
	}
	// A read-only command names the database too, on stderr.
	var users []any
	if res := e.cliIn(elsewhere, "", "user", "list", "--json"); res.code != 0 ||
		json.Unmarshal([]byte(res.stdout), &users) != nil || !strings.Contains(res.stderr, "Database: sqlite "+database) {
		t.Fatalf("user list --json from another directory: %s", res)
	}
}

// ISSUED is when the certificate was issued, not its NotBefore, which
// the issuer backdates by a minute so that clocks slightly behind accept
// it, and which the clients row keeps as issued_at.
func TestCLICertListShowsWhenACertificateWasIssued(t *testing.T) {
	e := newCLIEnv(t, storage.DriverSQLite).migrated()
	issuedAt := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	notBefore := issuedAt.Add(-time.Minute)
	if err := e.db().Clients.Insert(context.Background(), &storage.Client{ClientID: "proxy-1", SerialNumber: "a1",
		FingerprintSHA256: fmt.Sprintf("%064d", 1), Role: storage.ClientRoleProxy, Subject: "CN=proxy-1",
		IssuedAt: notBefore, NotAfter: time.Now().Add(24 * time.Hour), CreatedAt: issuedAt, CreatedBy: "cli"}); err != nil {
		t.Fatal(err)
	}
	var certs []struct {
		IssuedAt  time.Time `json:"issued_at"`
		NotBefore time.Time `json:"not_before"`
	}
	e.json(&certs, "cert", "list")
	if len(certs) != 1 || !certs[0].IssuedAt.Equal(issuedAt) || !certs[0].NotBefore.Equal(notBefore) {
		t.Fatalf("cert list --json: %+v, want issued_at %s and not_before %s", certs, issuedAt, notBefore)
	}
	lines := strings.Split(strings.TrimSpace(e.ok("", "cert", "list").stdout), "\n")
	if len(lines) != 2 || !cliMatch(`^proxy-1\s+proxy\s+a1\s+active\s+2026-11-24 10:00:00\s`, lines[1]) {
		t.Fatalf("cert list:\n%s", strings.Join(lines, "\n"))
	}
}

// The Quick start is copied into scripts: each of its CLI lines but the
// one that prompts for a password must run without a terminal.
func TestCLIQuickStartRunsFromAScript(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, quickStart, _ := strings.Cut(string(readme), "## Quick start")
	quickStart, _, _ = strings.Cut(quickStart, "\n## ")
	var commands [][]string
	for _, line := range strings.Split(quickStart, "\n") {
		rest, ok := strings.CutPrefix(line, "./caddy msgbroker ")
		if !ok || strings.HasPrefix(rest, "user create ") {
			continue
		}
		args := strings.Fields(rest)
		if strings.ContainsAny(rest, `"'`) || !slices.Contains(args, "--config") {
			t.Fatalf("cannot run the Quick start line %q", line)
		}
		i := slices.Index(args, "--config")
		commands = append(commands, slices.Delete(args, i, i+2))
	}
	if len(commands) < 4 || !slices.ContainsFunc(commands, func(a []string) bool { return slices.Equal(a[:2], []string{"cert", "revoke"}) }) {
		t.Fatalf("the Quick start's CLI lines: %v", commands)
	}
	e := newCLIEnv(t, storage.DriverSQLite)
	e.createCA()
	for _, args := range commands {
		e.ok("", args...)
	}
}

// Gateways watch the keyring file and switch keys within 2 seconds, so
// nothing the key commands say may send the operator to reload them; and
// one body is one body.
func TestCLIKeysRotateNeedsNoReloadAndCountsInTheSingular(t *testing.T) {
	e := newCLIEnv(t, storage.DriverSQLite).migrated()
	oldKey := cliKeyring(t, e).PrimaryID()
	for i := range 2 {
		id := uuid.NewString()
		env, err := cliKeyring(t, e).Encrypt([]byte("body"), []byte(id))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.db().DB.NewInsert().Model(&storage.Message{MessageID: id, ClientID: "proxy-1", SenderNumberHash: fmt.Sprintf("%064d", i),
			SenderNumberMasked: "+4915****0000", BodyEncrypted: env, EncryptionKeyID: oldKey, PayloadHash: fmt.Sprintf("%064d", i),
			Status: storage.MessageQueued}).Exec(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	for _, help := range []string{"rotate", "retire"} {
		if res := e.ok("", "keys", help, "--help"); strings.Contains(strings.ToLower(res.stdout), "reload every") ||
			strings.Contains(res.stdout, "reload them") || !strings.Contains(res.stdout, "within 2 seconds") {
			t.Errorf("keys %s --help:\n%s", help, res.stdout)
		}
	}

	res := e.ok("", "keys", "rotate", "--batch-size", "1", "--max-batches", "1")
	newKey := cliKeyring(t, e).PrimaryID()
	if strings.Contains(res.stderr, "caddy reload") || !strings.Contains(res.stderr, "Running gateways switch to it within 2 seconds, without a reload.") ||
		res.stdout != "Re-encrypted 1 body with key "+newKey+".\n1 body remains under an older key; run 'caddy msgbroker keys rotate' again to continue.\n" {
		t.Fatalf("keys rotate --max-batches 1: %s", res)
	}
	e.fails(1, "1 message body is still encrypted with key "+oldKey, "", "keys", "retire", oldKey, "--force")

	res = e.ok("", "keys", "rotate")
	if !strings.Contains(res.stderr, "Resuming: 1 body is still under an older key; re-encrypting it with key "+newKey+".") ||
		res.stdout != "Re-encrypted 1 body with key "+newKey+".\nKey "+oldKey+" encrypts no body any more; remove it with 'caddy msgbroker keys retire "+oldKey+"'.\n" {
		t.Fatalf("resumed keys rotate: %s", res)
	}
}
