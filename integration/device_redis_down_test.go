package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/msgbroker/caddy-msgbroker/internal/testcaddy"
	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

// TestDeviceRedisDownAnswers503WhileInternalAPIWorks runs a gateway whose
// device channel keeps its sessions in a Redis server of its own, stops
// that server, and requires the device answer shape for the outage (503,
// code 8, Retry-After) while the internal API still registers messages.
func TestDeviceRedisDownAnswers503WhileInternalAPIWorks(t *testing.T) {
	redisPort := testcaddy.FreePort(t)
	stopRedis := startRedisServer(t, redisPort)

	g := &gateway{t: t, mtlsPort: testcaddy.FreePort(t), httpPort: testcaddy.FreePort(t)}
	apiPort := testcaddy.FreePort(t)
	g.caddyfile = g.config(databaseConfig(t, "sqlite"), fmt.Sprintf("redis 127.0.0.1:%d", redisPort)) +
		fmt.Sprintf(`
http://127.0.0.1:%d {
	handle /api {
		msgbroker_device {
			store redis
			key_pool 2
		}
	}
}
`, apiPort)
	g.start()
	for _, d := range []string{"dev-a", "dev-b"} {
		if err := g.services().Store.Devices.Add(context.Background(), &storage.Device{UserID: deviceUser, DeviceID: d, Name: "device " + d}); err != nil {
			t.Fatal(err)
		}
	}
	api := fmt.Sprintf("http://127.0.0.1:%d/api", apiPort)

	// With Redis up the session opens: the store really is Redis.
	if status, _, body := postDevice(t, api, url.Values{"key": {deviceUser + "dev-a"}, "status": {"on"}}); status != http.StatusOK || !strings.Contains(body, `"code": 0`) {
		t.Fatalf("auth with Redis up = %d %s", status, body)
	}

	stopRedis()

	const unavailable = `{"message": "unavailable", "code": 8}`
	for name, form := range map[string]url.Values{
		"auth":    {"key": {deviceUser + "dev-b"}, "status": {"on"}},
		"logout":  {"key": {deviceUser + "dev-a"}, "status": {"off"}},
		"message": {"key": {deviceUser + "dev-a"}, "message": {`{"encryptedKey":"AAAA","iv":"AAAAAAAAAAAAAAAAAAAAAA==","ciphertext":"AAAAAAAAAAAAAAAAAAAAAA==","minute":1}`}},
	} {
		status, header, body := postDevice(t, api, form)
		if status != http.StatusServiceUnavailable || body != unavailable {
			t.Errorf("%s with Redis down = %d %s, want 503 %s", name, status, body, unavailable)
		}
		if header.Get("Retry-After") == "" || header.Get("Content-Type") != "application/json" {
			t.Errorf("%s with Redis down: Retry-After %q, Content-Type %q", name, header.Get("Retry-After"), header.Get("Content-Type"))
		}
	}

	cert, _ := g.issue("redis-down-proxy", "proxy")
	if r := g.call(g.client(&cert), "POST", "/internal/messages/register", registerBody("", "+4915200000031", "while Redis is down")); r.Status != http.StatusCreated {
		t.Fatalf("internal register with Redis down = %d %s", r.Status, r.Raw)
	}
}

// startRedisServer runs a throwaway redis-server on port (no persistence)
// until the returned function, or the test's end, stops it.
func startRedisServer(t *testing.T, port int) (stop func()) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv(storagetest.EnvRequireServices) == "1" {
			t.Fatal("redis-server is required to stop Redis under the gateway")
		}
		t.Skip("redis-server not installed; set MSGBROKER_TEST_REQUIRE_SERVICES=1 to make this fail")
	}
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop = func() {
		_ = cmd.Process.Kill()
		<-done
	}
	t.Cleanup(stop)
	client := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port)})
	defer client.Close()
	for deadline := time.Now().Add(10 * time.Second); client.Ping(context.Background()).Err() != nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("redis-server did not answer within 10 s")
		}
	}
	return stop
}

// postDevice posts a device form and returns the status, headers and body.
func postDevice(t *testing.T, api string, form url.Values) (int, http.Header, string) {
	t.Helper()
	resp, err := http.PostForm(api, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(body)
}
