// Command loginflood measures what a login flood costs the internal API:
// the p99 of POST /internal/messages/register over mutual TLS into MariaDB,
// first alone, then while 200 clients send wrong passwords to
// POST /portal/auth/login as fast as they can. bcrypt (cost 12) runs on the
// portal's bounded worker pool within its budget of hashes a second; the
// lockouts are off so every login the budget admits really hashes. The
// product target: register p99 grows by at most 2x under the flood.
//
// The flood runs in a separate process (this program started again with
// -flood-client), so its own goroutines do not share the gateway's Go
// scheduler; on a small machine it still shares the CPUs, like an attacker
// on the same host would (-flood-nice lowers its priority, as a stand-in
// for an attacker elsewhere).
//
//	go run ./integration/loginflood -dsn 'root@tcp(127.0.0.1:3306)/' -duration 10s
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/msgbroker/caddy-msgbroker"
	"github.com/msgbroker/caddy-msgbroker/integration/internal/bench"
	"github.com/msgbroker/caddy-msgbroker/internal/broker"
)

type options struct {
	duration    time.Duration
	concurrency int
	flooders    int
	workers     int
	perSecond   int
	nice        int
	lockouts    bool
	delay       string
}

func main() {
	dsn := flag.String("dsn", "root@tcp(127.0.0.1:3306)/", "MariaDB server DSN (a database is created and dropped)")
	var o options
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "duration of each phase")
	flag.IntVar(&o.concurrency, "concurrency", 8, "concurrent register requests")
	flag.IntVar(&o.flooders, "flood", 200, "concurrent wrong logins")
	flag.IntVar(&o.workers, "hash-workers", 0, "the portal's bcrypt workers (0: its default, half the CPUs)")
	flag.IntVar(&o.perSecond, "hashes-per-second", 0, "the portal's bcrypt budget (0: its default, one per CPU; -1: none)")
	flag.IntVar(&o.nice, "flood-nice", 0, "nice value of the flood process (0: same priority as the gateway)")
	flag.StringVar(&o.delay, "failure-delay", "", "the portal's failure_delay (empty: its default, 1s; off: answer refusals at once)")
	flag.BoolVar(&o.lockouts, "lockouts", false, "keep the default lockouts (the flood's address is then locked after 20 failures)")
	floodURL := flag.String("flood-client", "", "internal: run as the flood process against this login URL")
	flag.Parse()
	if *floodURL != "" {
		flood(*floodURL, o.flooders, o.duration)
		return
	}
	if err := run(*dsn, o); err != nil {
		log.Fatal(err)
	}
}

// flood is the flood process: flooders clients post wrong passwords for
// duration, then it prints "<checked> <refused>".
func flood(url string, flooders int, duration time.Duration) {
	var logins, refused atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(duration)
	portal := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: flooders}, Timeout: time.Minute}
	body := []byte(`{"email":"victim@example.com","password":"a wrong password"}`)
	for range flooders {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				resp, err := portal.Post(url, "application/json", bytes.NewReader(body))
				if err != nil {
					continue
				}
				// Drain the answer so the connection is reused, as a
				// determined client would; Retry-After is ignored.
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusUnauthorized {
					logins.Add(1)
				} else {
					refused.Add(1)
				}
			}
		})
	}
	wg.Wait()
	fmt.Println(logins.Load(), refused.Load())
}

// startFlood starts the flood process for duration.
func startFlood(url string, o options, duration time.Duration) (*exec.Cmd, *bytes.Buffer, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	args := []string{self, "-flood-client", url, "-flood", strconv.Itoa(o.flooders), "-duration", duration.String()}
	if o.nice != 0 {
		args = append([]string{"nice", "-n", strconv.Itoa(o.nice)}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	out := new(bytes.Buffer)
	cmd.Stdout, cmd.Stderr = out, os.Stderr
	return cmd, out, cmd.Start()
}

func run(serverDSN string, o options) error {
	dbDSN, drop, err := bench.CreateDatabase(serverDSN, "msgbroker_flood_")
	if err != nil {
		return err
	}
	defer drop()
	dir, err := os.MkdirTemp("", "msgbroker-loginflood")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	mtlsPort, portalPort := mustFreePort(), mustFreePort()
	if err := startCaddy(dir, dbDSN, mtlsPort, portalPort, o); err != nil {
		return err
	}
	defer caddy.Stop() //nolint:errcheck
	svcs, err := bench.Services()
	if err != nil {
		return err
	}
	if _, err := svcs.Users.Create(context.Background(), broker.Actor{Name: "loginflood"},
		broker.NewUser{Email: "victim@example.com", Password: "the real password", Role: "user"}); err != nil {
		return err
	}
	base := fmt.Sprintf("https://localhost:%d", mtlsPort)
	client, err := bench.MTLSClient(svcs, dir, "flood-proxy", base, o.concurrency)
	if err != nil {
		return err
	}
	register := func() []byte {
		return []byte(fmt.Sprintf(`{"sender_number":"+49152%08d","message_body":"flood test %d"}`, rand.IntN(1e8), rand.Int()))
	}
	cpu0 := processCPU()
	quiet := bench.Load(client, base+"/internal/messages/register", o.duration, o.concurrency, http.StatusCreated, register)
	cpu1 := processCPU()

	floodFor := o.duration + 2*time.Second
	cmd, out, err := startFlood(fmt.Sprintf("http://127.0.0.1:%d/portal/auth/login", portalPort), o, floodFor)
	if err != nil {
		return fmt.Errorf("starting the flood process: %w", err)
	}
	time.Sleep(time.Second)
	cpu2 := processCPU()
	flooded := bench.Load(client, base+"/internal/messages/register", o.duration, o.concurrency, http.StatusCreated, register)
	cpu3 := processCPU()
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("flood process: %w", err)
	}
	var logins, refused int64
	if _, err := fmt.Sscan(strings.TrimSpace(out.String()), &logins, &refused); err != nil {
		return fmt.Errorf("flood process said %q: %w", out.String(), err)
	}

	fmt.Printf("register alone        %s\n", quiet)
	fmt.Printf("register under flood  %s\n", flooded)
	delay := o.delay
	if delay == "" {
		delay = "default"
	}
	fmt.Printf("flood (separate process, nice %d, failure_delay %s): %d wrong logins checked (%.1f/s), %d refused (429, %.0f/s)\n", o.nice, delay, logins,
		float64(logins)/floodFor.Seconds(), refused, float64(refused)/floodFor.Seconds())
	floodCPU := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	fmt.Printf("CPU per second of a phase: gateway+register clients %.2f alone, %.2f under flood; flood process %.2f\n",
		(cpu1-cpu0).Seconds()/o.duration.Seconds(), (cpu3-cpu2).Seconds()/o.duration.Seconds(), floodCPU.Seconds()/floodFor.Seconds())
	fmt.Printf("p99 ratio flood/alone = %.2f (target <= 2)\n", float64(flooded.P(0.99))/float64(quiet.P(0.99)))
	return nil
}

func startCaddy(dir, dsn string, mtlsPort, portalPort int, o options) error {
	if err := os.Setenv("MSGBROKER_FLOOD_DSN", dsn); err != nil {
		return err
	}
	login := "max_failures -1\n\t\t\taddress_max_failures -1"
	if o.lockouts {
		login = ""
	}
	if o.workers > 0 {
		login += fmt.Sprintf("\n\t\t\thash_workers %d", o.workers)
	}
	if o.perSecond != 0 {
		login += fmt.Sprintf("\n\t\t\thashes_per_second %d", o.perSecond)
	}
	if o.delay != "" {
		login += "\n\t\t\tfailure_delay " + o.delay
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
		database mysql {env.MSGBROKER_FLOOD_DSN} {
			auto_migrate on
		}
		dev_keys %s
		login {
			%s
		}
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
	msgbroker_internal
}

http://127.0.0.1:%d {
	msgbroker_portal
}
`, mustFreePort(), filepath.Join(dir, "caddy"), filepath.Join(dir, "secrets"), login, mtlsPort, portalPort)
	cfgJSON, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	if err != nil {
		return fmt.Errorf("adapting: %w", err)
	}
	return caddy.Load(cfgJSON, true)
}

// processCPU is the CPU time this process (the gateway and the register
// clients) has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// mustFreePort is bench.FreePort for the config template, where an error
// has nowhere to go.
func mustFreePort() int {
	port, err := bench.FreePort()
	if err != nil {
		log.Fatal(err)
	}
	return port
}
