// Command loginflood measures what a login flood costs the internal API:
// the p99 of POST /internal/messages/register over mutual TLS into MariaDB,
// first alone, then while 200 clients send wrong passwords to
// POST /portal/auth/login as fast as they can. bcrypt (cost 12) runs on the
// portal's bounded worker pool (hash_workers); the lockouts are off so
// every login really hashes. The product target: register p99 grows by at
// most 2× under the flood.
//
//	go run ./integration/loginflood -dsn 'root@tcp(127.0.0.1:3306)/' -duration 10s
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	"github.com/go-sql-driver/mysql"

	_ "github.com/msgbroker/caddy-msgbroker"
	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/modules/msgbroker"
)

func main() {
	dsn := flag.String("dsn", "root@tcp(127.0.0.1:3306)/", "MariaDB server DSN (a database is created and dropped)")
	duration := flag.Duration("duration", 10*time.Second, "duration of each phase")
	concurrency := flag.Int("concurrency", 8, "concurrent register requests")
	flooders := flag.Int("flood", 200, "concurrent wrong logins")
	workers := flag.Int("hash-workers", 0, "the portal's bcrypt workers (0: its default, half the CPUs)")
	lockouts := flag.Bool("lockouts", false, "keep the default lockouts (the flood's address is then locked after 20 failures)")
	flag.Parse()
	keepLockouts = *lockouts
	if err := run(*dsn, *duration, *concurrency, *flooders, *workers); err != nil {
		log.Fatal(err)
	}
}

var keepLockouts bool

func run(serverDSN string, duration time.Duration, concurrency, flooders, workers int) error {
	dbDSN, drop, err := createDatabase(serverDSN)
	if err != nil {
		return err
	}
	defer drop()
	dir, err := os.MkdirTemp("", "msgbroker-loginflood")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	mtlsPort, portalPort := freePort(), freePort()
	if err := startCaddy(dir, dbDSN, mtlsPort, portalPort, workers); err != nil {
		return err
	}
	defer caddy.Stop() //nolint:errcheck
	svcs, err := services()
	if err != nil {
		return err
	}
	if _, err := svcs.Users.Create(context.Background(), broker.Actor{Name: "loginflood"},
		broker.NewUser{Email: "victim@example.com", Password: "the real password", Role: "user"}); err != nil {
		return err
	}
	base := fmt.Sprintf("https://localhost:%d", mtlsPort)
	client, err := mtlsClient(svcs, dir, base, concurrency)
	if err != nil {
		return err
	}
	register := func() []byte {
		return []byte(fmt.Sprintf(`{"sender_number":"+49152%08d","message_body":"flood test %d"}`, rand.IntN(1e8), rand.Int()))
	}
	quiet := load(client, base+"/internal/messages/register", duration, concurrency, http.StatusCreated, register)

	stop := make(chan struct{})
	var logins, refused atomic.Int64
	var wg sync.WaitGroup
	portal := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: flooders}, Timeout: time.Minute}
	for range flooders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := []byte(`{"email":"victim@example.com","password":"a wrong password"}`)
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := portal.Post(fmt.Sprintf("http://127.0.0.1:%d/portal/auth/login", portalPort), "application/json", bytes.NewReader(body))
				if err != nil {
					continue
				}
				// Drain the answer so the connection is reused, as a
				// determined client would.
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusUnauthorized {
					logins.Add(1)
				} else {
					refused.Add(1)
				}
			}
		}()
	}
	time.Sleep(time.Second)
	flooded := load(client, base+"/internal/messages/register", duration, concurrency, http.StatusCreated, register)
	close(stop)
	wg.Wait()

	fmt.Printf("register alone        %s\n", quiet)
	fmt.Printf("register under flood  %s\n", flooded)
	fmt.Printf("flood: %d wrong logins checked (%.0f/s), %d refused busy (429)\n", logins.Load(),
		float64(logins.Load())/(duration+time.Second).Seconds(), refused.Load())
	fmt.Printf("p99 ratio flood/alone = %.2f (target <= 2)\n", float64(flooded.p(0.99))/float64(quiet.p(0.99)))
	return nil
}

func createDatabase(serverDSN string) (string, func(), error) {
	admin, err := sql.Open("mysql", serverDSN)
	if err != nil {
		return "", nil, err
	}
	name := "msgbroker_flood_" + randomHex(6)
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		return "", nil, fmt.Errorf("creating database: %w", err)
	}
	cfg, err := mysql.ParseDSN(serverDSN)
	if err != nil {
		return "", nil, err
	}
	cfg.DBName = name
	return cfg.FormatDSN(), func() {
		_, _ = admin.Exec("DROP DATABASE " + name)
		_ = admin.Close()
	}, nil
}

func startCaddy(dir, dsn string, mtlsPort, portalPort, workers int) error {
	if err := os.Setenv("MSGBROKER_FLOOD_DSN", dsn); err != nil {
		return err
	}
	login := "max_failures -1\n\t\t\taddress_max_failures -1"
	if keepLockouts {
		login = ""
	}
	if workers > 0 {
		login += fmt.Sprintf("\n\t\t\thash_workers %d", workers)
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
`, freePort(), filepath.Join(dir, "caddy"), filepath.Join(dir, "secrets"), login, mtlsPort, portalPort)
	cfgJSON, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	if err != nil {
		return fmt.Errorf("adapting: %w", err)
	}
	return caddy.Load(cfgJSON, true)
}

func services() (*msgbroker.Services, error) {
	app, err := caddy.ActiveContext().App(msgbroker.AppName)
	if err != nil {
		return nil, err
	}
	return app.(*msgbroker.App).Services(context.Background())
}

func mtlsClient(svcs *msgbroker.Services, dir, base string, concurrency int) (*http.Client, error) {
	issued, _, err := svcs.Certificates.Issue(context.Background(), broker.Actor{Name: "loginflood"},
		broker.IssueRequest{ClientID: "flood-proxy", Role: "proxy"})
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(issued.ChainPEM, issued.PrivateKeyPEM)
	if err != nil {
		return nil, err
	}
	rootPEM, err := os.ReadFile(filepath.Join(dir, "caddy", "pki", "authorities", "local", "root.crt"))
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(rootPEM)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: roots, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: concurrency,
	}}
	for range 300 {
		if resp, err := client.Get(base + "/"); err == nil {
			resp.Body.Close()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return client, nil
}

type result struct {
	ok, failed int64
	elapsed    time.Duration
	latencies  []time.Duration
}

func (r result) p(q float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	return r.latencies[int(q*float64(len(r.latencies)-1))]
}

func (r result) String() string {
	return fmt.Sprintf("%7.0f req/s  ok %d  failed %d  p50 %s  p99 %s", float64(r.ok)/r.elapsed.Seconds(), r.ok, r.failed,
		r.p(0.50).Round(10*time.Microsecond), r.p(0.99).Round(10*time.Microsecond))
}

func load(client *http.Client, url string, duration time.Duration, concurrency, want int, body func() []byte) result {
	var ok, failed atomic.Int64
	var mu sync.Mutex
	var latencies []time.Duration
	deadline := time.Now().Add(duration)
	start := time.Now()
	var wg sync.WaitGroup
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []time.Duration
			for time.Now().Before(deadline) {
				t0 := time.Now()
				resp, err := client.Post(url, "application/json", bytes.NewReader(body()))
				if err != nil {
					failed.Add(1)
					continue
				}
				_ = resp.Body.Close()
				if resp.StatusCode == want {
					ok.Add(1)
					local = append(local, time.Since(t0))
				} else {
					failed.Add(1)
				}
			}
			mu.Lock()
			latencies = append(latencies, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	return result{ok: ok.Load(), failed: failed.Load(), elapsed: time.Since(start), latencies: latencies}
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func randomHex(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rand.IntN(256))
	}
	return hex.EncodeToString(b)
}
