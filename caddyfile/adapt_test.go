// Package caddyfile holds the golden adapt cases: for every global option,
// directive and shipped example, one Caddyfile and the JSON Caddy must make
// of it; and in testdata/invalid/, Caddyfiles that must not adapt, each
// with the exact error (offending token and line) it must give. Run
// `go test ./caddyfile -update` after a deliberate change and review the
// diff.
package caddyfile

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/msgbroker/caddy-msgbroker"
)

var update = flag.Bool("update", false, "rewrite the expected JSON of the golden cases")

// TestAdaptGoldenCases adapts each testdata/*.caddyfiletest (a Caddyfile,
// a line of ten dashes, the expected JSON) and compares.
func TestAdaptGoldenCases(t *testing.T) {
	files, err := filepath.Glob("testdata/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden cases found: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			input, expected, ok := strings.Cut(string(data), "----------")
			if !ok {
				t.Fatalf("%s: missing the ---------- separator", file)
			}
			input = strings.TrimSpace(input) + "\n"
			if *update {
				got := adapt(t, input)
				writeGolden(t, file, input+"----------\n"+got+"\n")
				return
			}
			if !caddytest.CompareAdapt(t, file, input, "caddyfile", strings.TrimSpace(expected)) {
				t.Errorf("%s: adapted JSON differs from the golden case (diff above)", file)
			}
		})
	}
}

// TestAdaptExamples adapts every shipped Caddyfile and compares it with its
// golden JSON in testdata/examples/.
func TestAdaptExamples(t *testing.T) {
	examples, err := filepath.Glob("../examples/*.Caddyfile")
	if err != nil || len(examples) == 0 {
		t.Fatalf("no example Caddyfiles found: %v", err)
	}
	examples = append(examples, "../Caddyfile.example")
	for _, file := range examples {
		golden := filepath.Join("testdata", "examples", filepath.Base(file)+".json")
		t.Run(filepath.Base(file), func(t *testing.T) {
			input, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if *update {
				writeGolden(t, golden, adapt(t, string(input))+"\n")
				return
			}
			expected, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("no golden JSON for %s (run with -update): %v", file, err)
			}
			if !caddytest.CompareAdapt(t, file, string(input), "caddyfile", strings.TrimSpace(string(expected))) {
				t.Errorf("%s: adapted JSON differs from %s (diff above)", file, golden)
			}
		})
	}
}

// TestAdaptRefusesInvalidCaddyfiles adapts each testdata/invalid/*.caddyfiletest
// (a Caddyfile, a line of ten dashes, the expected error) and requires that
// exact error: one that names the offending token and its line.
func TestAdaptRefusesInvalidCaddyfiles(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no invalid cases found: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			input, expected, ok := strings.Cut(string(data), "----------")
			if !ok {
				t.Fatalf("%s: missing the ---------- separator", file)
			}
			input = strings.TrimSpace(input) + "\n"
			out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(input), map[string]any{"filename": "Caddyfile"})
			if err == nil {
				t.Fatalf("adapting succeeded, want an error; got JSON %s", out)
			}
			if *update {
				writeGolden(t, file, input+"----------\n"+err.Error()+"\n")
				return
			}
			if got, want := err.Error(), strings.TrimSpace(expected); got != want {
				t.Errorf("wrong error\n got: %s\nwant: %s", got, want)
			}
		})
	}
}

// TestAdaptRejectsBadOptions checks that mistakes in the global option and
// the directives are reported at adapt time with the offending token and
// the line it is on.
func TestAdaptRejectsBadOptions(t *testing.T) {
	cases := map[string]struct {
		input string
		token string // what the error must quote
		line  int    // where it must point
	}{
		"unknown option":       {"{\n\tmsgbroker {\n\t\tdatabse sqlite x.db\n\t}\n}\n", "'databse'", 3},
		"unknown driver":       {"{\n\tmsgbroker {\n\t\tdatabase postgres x\n\t}\n}\n", "'postgres'", 3},
		"database without dsn": {"{\n\tmsgbroker {\n\t\tdatabase sqlite\n\t}\n}\n", "'sqlite'", 3},
		"bad pool size":        {"{\n\tmsgbroker {\n\t\tdatabase mysql dsn {\n\t\t\tmax_open_conns many\n\t\t}\n\t}\n}\n", "'many'", 4},
		"bad auto_migrate":     {"{\n\tmsgbroker {\n\t\tdatabase mysql dsn {\n\t\t\tauto_migrate sometimes\n\t\t}\n\t}\n}\n", "'sometimes'", 4},
		"bad duration":         {"{\n\tmsgbroker {\n\t\tdatabase mysql dsn {\n\t\t\tconn_max_lifetime forever\n\t\t}\n\t}\n}\n", "'forever'", 4},
		"redis extra arg":      {"{\n\tmsgbroker {\n\t\tredis a:1 b:2\n\t}\n}\n", "'b:2'", 3},
		"unknown redis option": {"{\n\tmsgbroker {\n\t\tredis a:1 {\n\t\t\tpasswd x\n\t\t}\n\t}\n}\n", "'passwd'", 4},
		"health with argument": {":80 {\n\tmsgbroker_health now\n}\n", "'now'", 2},
		"option argument":      {"{\n\tmsgbroker on\n}\n", "'on'", 2},
		"bad size":             {"{\n\tmsgbroker {\n\t\tmax_request_bytes lots\n\t}\n}\n", "'lots'", 3},
		"internal with option": {":80 {\n\tmsgbroker_internal {\n\t\tlimit 1\n\t}\n}\n", "'limit'", 3},
		"verifier with option": {":443 {\n\ttls internal {\n\t\tclient_auth {\n\t\t\tverifier msgbroker {\n\t\t\t\tpoll 1s\n\t\t\t}\n\t\t}\n\t}\n}\n", "'poll'", 5},
		"repeated option":      {"{\n\tmsgbroker {\n\t\tca one\n\t\tca two\n\t}\n}\n", "'ca'", 4},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(c.input), nil)
			if err == nil {
				t.Fatalf("adapting %q succeeded, want an error", c.input)
			}
			if !strings.Contains(err.Error(), c.token) {
				t.Errorf("error %q does not quote the offending token %s", err, c.token)
			}
			if at := regexp.MustCompile(fmt.Sprintf(`\bCaddyfile:%d\b`, c.line)); !at.MatchString(err.Error()) {
				t.Errorf("error %q does not point at Caddyfile:%d", err, c.line)
			}
		})
	}
}

func adapt(t *testing.T, input string) string {
	t.Helper()
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(input), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatalf("adapting: %v", err)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, out, "", "\t"); err != nil {
		t.Fatal(err)
	}
	return pretty.String()
}

func writeGolden(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
