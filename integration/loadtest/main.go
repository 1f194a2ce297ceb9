// Command loadtest measures the internal API's register endpoint against
// Caddy's own `respond` handler on the same mutual-TLS listener, with the
// same clients, in one run, and prints the ratio the product targets
// (register ≥ 0.5 × respond, every acknowledged message durable).
//
//	go run ./integration/loadtest -dsn 'root@tcp(127.0.0.1:3306)/' -duration 10s -concurrency 32
//
// It starts an in-process Caddy built from our modules on a fresh MariaDB
// database (created and dropped), issues a proxy certificate through the
// broker's issuer, drives both routes over HTTP/2 with client
// certificates, then counts the rows to check that every 201 is stored.
package main

import (
	"database/sql"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/msgbroker/caddy-msgbroker"
	"github.com/msgbroker/caddy-msgbroker/integration/internal/bench"
)

func main() {
	dsn := flag.String("dsn", "root@tcp(127.0.0.1:3306)/", "MariaDB server DSN (a database is created and dropped)")
	duration := flag.Duration("duration", 10*time.Second, "load duration per route")
	concurrency := flag.Int("concurrency", 32, "concurrent requests")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the register phase to this file")
	flag.Parse()
	profilePath = *cpuProfile
	if err := run(*dsn, *duration, *concurrency); err != nil {
		log.Fatal(err)
	}
}

func run(serverDSN string, duration time.Duration, concurrency int) error {
	dbDSN, drop, err := bench.CreateDatabase(serverDSN, "msgbroker_load_")
	if err != nil {
		return err
	}
	defer drop()
	dir, err := os.MkdirTemp("", "msgbroker-loadtest")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	port, err := bench.FreePort()
	if err != nil {
		return err
	}
	if err := startCaddy(dir, dbDSN, port, concurrency); err != nil {
		return err
	}
	defer caddy.Stop() //nolint:errcheck

	base := fmt.Sprintf("https://localhost:%d", port)
	svcs, err := bench.Services()
	if err != nil {
		return err
	}
	client, err := bench.MTLSClient(svcs, dir, "load-proxy", base, concurrency)
	if err != nil {
		return err
	}
	baseline := bench.Load(client, base+"/baseline", duration, concurrency, http.StatusCreated, func() []byte { return []byte(`{}`) })
	stopProfile, err := startProfile()
	if err != nil {
		return err
	}
	register := bench.Load(client, base+"/internal/messages/register", duration, concurrency, http.StatusCreated, func() []byte {
		return []byte(fmt.Sprintf(`{"sender_number":"+49152%08d","message_body":"load test message %d"}`, rand.IntN(1e8), rand.Int()))
	})
	stopProfile()
	stored, err := countMessages(dbDSN)
	if err != nil {
		return err
	}
	fmt.Printf("respond   %s\nregister  %s\n", baseline, register)
	fmt.Printf("ratio register/respond = %.2f (target >= 0.50)\n", register.Rate()/baseline.Rate())
	fmt.Printf("acknowledged %d, stored %d, durable: %t\n", register.OK, stored, stored >= register.OK)
	if stored < register.OK {
		return fmt.Errorf("%d acknowledged messages are missing", register.OK-stored)
	}
	return nil
}

func startCaddy(dir, dsn string, port, concurrency int) error {
	if err := os.Setenv("MSGBROKER_LOAD_DSN", dsn); err != nil {
		return err
	}
	adminPort, err := bench.FreePort()
	if err != nil {
		return err
	}
	caddyfile := fmt.Sprintf(`{
	admin localhost:%d
	skip_install_trust
	storage file_system %s
	log {
		level ERROR
	}
	pki {
		ca local
	}
	msgbroker {
		database mysql {env.MSGBROKER_LOAD_DSN} {
			max_open_conns %d
			auto_migrate on
		}
		dev_keys %s
	}
}

https://localhost:%d {
	tls internal {
		client_auth {
			mode require_and_verify
			trust_pool pki_root {
				authority local
			}
			verifier msgbroker
		}
	}
	respond /baseline `+"`"+`{"message_id":"00000000-0000-0000-0000-000000000000","status":"queued","queued_at":"2026-01-01T00:00:00Z"}`+"`"+` 201
	msgbroker_internal
}
`, adminPort, filepath.Join(dir, "caddy"), concurrency, filepath.Join(dir, "secrets"), port)
	cfgJSON, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	if err != nil {
		return fmt.Errorf("adapting: %w", err)
	}
	if err := caddy.Load(cfgJSON, true); err != nil {
		return fmt.Errorf("starting caddy: %w", err)
	}
	return nil
}

func countMessages(dsn string) (int64, error) {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var n int64
	err = db.QueryRow("SELECT COUNT(*) FROM messages").Scan(&n)
	return n, err
}

var profilePath string

// startProfile profiles the process (Caddy, our handlers and the load
// generator alike) while the register phase runs.
func startProfile() (func(), error) {
	if profilePath == "" {
		return func() {}, nil
	}
	f, err := os.Create(profilePath)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
