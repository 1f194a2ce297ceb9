package device_test

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/msgbroker/caddy-msgbroker/internal/testcaddy"
)

// BenchmarkSessionStart times `status=on` through a real gateway (built-in
// directory, in-process store) with the key pool warm: before each start
// it waits, untimed, until the pool holds a key, so the timed path never
// generates one, while the background refill runs as it does in service.
// Each logout is untimed too. It reports p50 and p99 besides ns/op and
// fails if a key was generated on the request path.
//
//	go test ./modules/device -run '^$' -bench SessionStart -benchtime 200x
func BenchmarkSessionStart(b *testing.B) {
	srvAPI := gateway(b, "", "key_pool 8")
	srv := lastServer
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	post := func(form url.Values) string {
		resp, err := client.PostForm(srvAPI, form)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	times := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		for poolMetric(b, srv, "msgbroker_device_key_pool_depth") < 1 {
			time.Sleep(5 * time.Millisecond)
		}
		b.StartTimer()
		begin := time.Now()
		body := post(url.Values{"key": {key}, "status": {"on"}})
		times = append(times, time.Since(begin))
		b.StopTimer()
		if !strings.HasPrefix(body, `{"message": "-----BEGIN PUBLIC KEY-----\n`) {
			b.Fatalf("auth: %s", body)
		}
		if body := post(url.Values{"key": {key}, "status": {"off"}}); body != `{"message": "deleted", "code": 0}` {
			b.Fatalf("logout: %s", body)
		}
		b.StartTimer()
	}
	b.StopTimer()
	if misses := poolMetric(b, srv, "msgbroker_device_key_pool_misses_total"); misses != 0 {
		b.Fatalf("%v keys generated on the request path", misses)
	}
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(times[len(times)*99/100].Microseconds())/1000, "p99-ms")
}

// poolMetric reads one unlabelled series from Caddy's metrics endpoint.
func poolMetric(b *testing.B, srv *testcaddy.Server, name string) float64 {
	status, body, err := srv.AdminGet("/metrics")
	if err != nil || status != 200 {
		b.Fatalf("metrics: %d %v", status, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatal(err)
			}
			return f
		}
	}
	b.Fatalf("no %s in the metrics", name)
	return 0
}
