// Package bench holds what the load programs under integration/ share: a
// throwaway MariaDB database, free ports, the running gateway's services
// and an mTLS client with a certificate from the broker's own CA.
package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/go-sql-driver/mysql"

	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/modules/msgbroker"
)

// CreateDatabase creates a database named prefix plus random hex on the
// server of serverDSN and returns its DSN and a function that drops it.
func CreateDatabase(serverDSN, prefix string) (string, func(), error) {
	admin, err := sql.Open("mysql", serverDSN)
	if err != nil {
		return "", nil, err
	}
	name := prefix + RandomHex(6)
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		_ = admin.Close()
		return "", nil, fmt.Errorf("creating database: %w", err)
	}
	cfg, err := mysql.ParseDSN(serverDSN)
	if err != nil {
		_ = admin.Close()
		return "", nil, err
	}
	cfg.DBName = name
	return cfg.FormatDSN(), func() {
		_, _ = admin.Exec("DROP DATABASE " + name)
		_ = admin.Close()
	}, nil
}

// FreePort returns a TCP port free on 127.0.0.1 now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// RandomHex returns 2n random hex digits.
func RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Services returns the services of the Caddy running in this process.
func Services() (*msgbroker.Services, error) {
	app, err := caddy.ActiveContext().App(msgbroker.AppName)
	if err != nil {
		return nil, err
	}
	return app.(*msgbroker.App).Services(context.Background())
}

// MTLSClient issues a proxy certificate for clientID through the broker's
// one issuing path and returns an HTTP/2 client presenting it, trusting the
// local CA whose storage is under dir/caddy. It waits until base answers,
// since Caddy issues its own listener certificate in the background.
func MTLSClient(svcs *msgbroker.Services, dir, clientID, base string, concurrency int) (*http.Client, error) {
	issued, _, err := svcs.Certificates.Issue(context.Background(), broker.Actor{Name: "bench"},
		broker.IssueRequest{ClientID: clientID, Role: "proxy"})
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

// Result is what a Load phase measured: answers with the wanted status,
// the rest (errors included), the phase's length and the latencies of the
// wanted answers, sorted.
type Result struct {
	OK, Failed int64
	Elapsed    time.Duration
	Latencies  []time.Duration
}

// Rate is the wanted answers per second.
func (r Result) Rate() float64 { return float64(r.OK) / r.Elapsed.Seconds() }

// P is the q-quantile of the latencies (0 without any).
func (r Result) P(q float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	return r.Latencies[int(q*float64(len(r.Latencies)-1))]
}

func (r Result) String() string {
	return fmt.Sprintf("%8.0f req/s  ok %d  failed %d  p50 %s  p99 %s", r.Rate(), r.OK, r.Failed,
		r.P(0.50).Round(10*time.Microsecond), r.P(0.99).Round(10*time.Microsecond))
}

// Load POSTs body() to url from concurrency clients for duration and
// counts the answers with status want.
func Load(client *http.Client, url string, duration time.Duration, concurrency, want int, body func() []byte) Result {
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
	slices.Sort(latencies)
	return Result{OK: ok.Load(), Failed: failed.Load(), Elapsed: time.Since(start), Latencies: latencies}
}
