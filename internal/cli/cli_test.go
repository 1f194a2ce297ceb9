package cli

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/internal/broker"
)

// fakeTerminal is a terminal for the prompts: lines typed in, passwords
// typed without echo, and what was written.
type fakeTerminal struct {
	out, err  bytes.Buffer
	passwords []string
	reads     int
}

// newFake makes the commands talk to a fake terminal for the rest of the
// test.
func newFake(t *testing.T, terminal bool, stdin string) (*console, *fakeTerminal) {
	f := &fakeTerminal{}
	s := &streams{
		in: strings.NewReader(stdin), out: &f.out, err: &f.err,
		stdinTerminal:  func() bool { return terminal },
		stderrTerminal: func() bool { return terminal },
		readPassword: func() ([]byte, error) {
			if f.reads >= len(f.passwords) {
				return nil, errors.New("no more input")
			}
			f.reads++
			return []byte(f.passwords[f.reads-1]), nil
		},
		now: func() time.Time { return time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC) },
	}
	saved := stdio
	stdio = s
	t.Cleanup(func() { stdio = saved })
	return &console{io: s}, f
}

// exitStatus is the status caddycmd.Main exits with after the command
// returned err: the ExitCode of caddycmd's exit error, 1 for any other
// error.
func exitStatus(err error) int {
	if err == nil {
		return 0
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		v := reflect.ValueOf(e)
		if v.Kind() == reflect.Pointer && v.Elem().Kind() == reflect.Struct {
			if code := v.Elem().FieldByName("ExitCode"); code.IsValid() {
				return int(code.Int())
			}
		}
	}
	return 1
}

func TestCLIExitCodes(t *testing.T) {
	newFake(t, false, "")
	cases := []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errors.New("database down"), 1},
		{usagef("bad flag"), 2},
		{fmt.Errorf("wrapped: %w", usagef("bad flag")), 2},
		{apperr.New(apperr.Invalid, "password_too_short", "short"), 2},
		{fmt.Errorf("wrapped: %w", apperr.New(apperr.Invalid, "password_too_short", "short")), 2},
		{apperr.New(apperr.Conflict, "last_admin", "last"), 1},
		{apperr.New(apperr.NotFound, "user_not_found", "none"), 1},
	}
	for _, c := range cases {
		if got, _ := exit(c.err); got != c.want {
			t.Errorf("exit(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}

func TestCLIExitPrintsOnceAndCarriesTheExitCode(t *testing.T) {
	_, f := newFake(t, false, "")
	invoked = "probe"
	code, err := exit(apperr.New(apperr.Invalid, "invalid_email", "not an email"))
	if code != 2 || err != nil {
		t.Fatalf("exit(invalid) = %d, %v; want 2 and nothing for caddycmd to log", code, err)
	}
	if f.err.String() != "Error: not an email\nRun 'probe --help' for usage.\n" {
		t.Fatalf("stderr = %q", f.err.String())
	}
	f.err.Reset()
	failure := errors.New("database down")
	code, err = exit(failure)
	if code != 1 || err != failure || f.err.String() != "Error: database down\n" {
		t.Fatalf("exit(failure) = %d, %v; stderr %q", code, err, f.err.String())
	}
}

func TestCLIConfirm(t *testing.T) {
	cases := []struct {
		name     string
		terminal bool
		force    bool
		stdin    string
		wantCode int
	}{
		{"yes", true, false, "y\n", 0},
		{"YES", true, false, " YES \n", 0},
		{"no", true, false, "n\n", 1},
		{"empty answer", true, false, "\n", 1},
		{"end of input", true, false, "", 1},
		{"not a terminal", false, false, "y\n", 2},
		{"forced without a terminal", false, true, "", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, f := newFake(t, tc.terminal, tc.stdin)
			err := c.confirm(tc.force, "Delete user 2?")
			if got := exitFor(err); got != tc.wantCode {
				t.Fatalf("confirm = %v (exit %d), want exit %d", err, got, tc.wantCode)
			}
			asked := strings.Contains(f.err.String(), "Delete user 2? [y/N] ")
			if asked != (tc.terminal && !tc.force) {
				t.Fatalf("asked = %t, stderr %q", asked, f.err.String())
			}
		})
	}
}

func TestCLINewPasswordAsksTwiceAndAppliesThePolicy(t *testing.T) {
	c, f := newFake(t, true, "")
	f.passwords = []string{"short", "long enough 1", "different 1", "long enough 2", "long enough 2"}
	pw, err := c.newPassword(false)
	if err != nil || pw != "long enough 2" {
		t.Fatalf("newPassword = %q, %v", pw, err)
	}
	stderr := f.err.String()
	if !strings.Contains(stderr, "a password needs at least 8 characters") || !strings.Contains(stderr, "The passwords do not match.") ||
		strings.Count(stderr, "New password: ") != 3 || strings.Count(stderr, "Repeat password: ") != 2 {
		t.Fatalf("stderr = %q", stderr)
	}
	for _, p := range f.passwords {
		if strings.Contains(stderr+f.out.String(), p) {
			t.Fatalf("a typed password was echoed: %q", stderr)
		}
	}

	c, f = newFake(t, true, "")
	f.passwords = []string{"a", "b", "c"}
	if _, err := c.newPassword(false); err == nil {
		t.Fatal("three refused passwords were accepted")
	}

	c, _ = newFake(t, false, "")
	if _, err := c.newPassword(false); exitFor(err) != 2 || !strings.Contains(err.Error(), "--password-stdin") {
		t.Fatalf("newPassword without a terminal = %v", err)
	}
}

func TestCLIPasswordStdin(t *testing.T) {
	cases := []struct {
		stdin, want string
		code        int
	}{
		{"long enough\n", "long enough", 0},
		{"long enough\r\nignored second line\n", "long enough", 0},
		{"no newline at the end", "no newline at the end", 0},
		{"short\n", "", 2},
		{strings.Repeat("x", maxPasswordInput+1), "", 2},
	}
	for _, tc := range cases {
		c, _ := newFake(t, false, tc.stdin)
		pw, err := c.newPassword(true)
		if exitFor(err) != tc.code || (tc.code == 0 && pw != tc.want) {
			t.Errorf("--password-stdin %.20q = %q, %v", tc.stdin, pw, err)
		}
	}
}

// exitFor is the status a command ending with err exits with.
func exitFor(err error) int {
	code, _ := exit(err)
	return code
}

func TestCLICountUsesThousandsSeparators(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 12345: "12,345", 1234567: "1,234,567", -1234: "-1,234"} {
		if got := count(n); got != want {
			t.Errorf("count(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestCLIStatsTextHasTheOriginalLayout(t *testing.T) {
	s := broker.Stats{
		Messages: broker.MessageStats{Total: 12345, Queued: 234, Delivered: 12000, Failed: 111, Last24h: 1456, Last7d: 9876},
		Clients:  broker.ClientStats{Total: 45, Active: 42, Revoked: 3},
		Users:    broker.UserStats{Total: 8, Admins: 2},
	}
	want := `System Statistics
==================================================

Messages:
  Total: 12,345
  Queued: 234
  Processing: 0
  Retrying: 0
  Delivered: 12,000
  Failed: 111
  Last 24 hours: 1,456
  Last 7 days: 9,876

Clients:
  Total: 45
  Active: 42
  Revoked: 3
  Expired: 0

Users:
  Total: 8
  Admins: 2
`
	if got := statsText(s); got != want {
		t.Fatalf("statsText:\n%s\nwant:\n%s", got, want)
	}
}

func TestCLIParseSince(t *testing.T) {
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	cases := map[string]time.Time{
		"2026-11-20T08:00:00Z": time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC),
		"2026-11-20":           time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC),
		"90m":                  now.Add(-90 * time.Minute),
		"7d":                   now.Add(-7 * 24 * time.Hour),
	}
	for in, want := range cases {
		if got, err := parseSince(in, now); err != nil || !got.Equal(want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"yesterday", "-5h", "7w", ""} {
		if _, err := parseSince(bad, now); err == nil {
			t.Errorf("parseSince(%q) succeeded", bad)
		}
	}
}

func TestCLIProgress(t *testing.T) {
	var log bytes.Buffer
	p := &progress{w: &log, label: "re-encrypting"}
	for done := int64(1); done <= 25; done++ {
		p.update(done, 25)
	}
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	if len(lines) != 10 || lines[0] != "re-encrypting: 3/25 (12%)" || lines[9] != "re-encrypting: 25/25 (100%)" {
		t.Fatalf("progress without a terminal:\n%s", log.String())
	}
	var bar bytes.Buffer
	p = &progress{w: &bar, terminal: true, label: "re-encrypting"}
	p.update(1500, 3000)
	p.end()
	if bar.String() != "\rre-encrypting [===============               ]  50% 1,500/3,000\n" {
		t.Fatalf("progress bar = %q", bar.String())
	}
}

func TestCLICommandTree(t *testing.T) {
	_, f := newFake(t, false, "")
	root := &cobra.Command{Use: "msgbroker"}
	attach(root)
	var paths []string
	var walk func(*cobra.Command)
	walk = func(cmd *cobra.Command) {
		for _, sub := range cmd.Commands() {
			if sub.Name() == "help" || sub.Name() == "completion" {
				continue
			}
			paths = append(paths, strings.TrimPrefix(sub.CommandPath(), "msgbroker "))
			walk(sub)
		}
	}
	walk(root)
	want := []string{
		"cert", "cert issue", "cert list", "cert revoke",
		"device", "device add", "device list", "device remove",
		"keys", "keys list", "keys retire", "keys rotate",
		"message", "message list", "message view",
		"migrate", "migrate down", "migrate status", "migrate up",
		"stats",
		"user", "user create", "user delete", "user list", "user password",
	}
	slices.Sort(paths)
	if !slices.Equal(paths, want) {
		t.Fatalf("commands:\n%v\nwant:\n%v", paths, want)
	}

	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"user", "delete"}, 2, "needs 1 argument(s), got 0"},
		{[]string{"user", "delete", "1", "2"}, 2, "takes at most 1 argument(s), got 2"},
		{[]string{"keys", "--bogus"}, 2, "unknown flag: --bogus"},
		{[]string{"device", "nope"}, 2, `unknown command "nope" for msgbroker device`},
		{[]string{"migrate"}, 2, "msgbroker migrate needs a subcommand"},
	}
	for _, tc := range cases {
		f.err.Reset()
		root.SetArgs(tc.args)
		err := root.Execute()
		if exitStatus(err) != tc.code || !strings.Contains(f.err.String(), tc.want) {
			t.Errorf("%v: exit %d (%v), stderr %q", tc.args, exitStatus(err), err, f.err.String())
		}
	}
}
