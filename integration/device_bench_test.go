package integration

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msgbroker/caddy-msgbroker/internal/devicecrypto"
)

// TestDeviceFigures measures the device channel's targets on this machine
// and logs them: messages/s through the gateway (4 devices sending at once)
// against a bare loop of rsa.DecryptOAEP with a key of the same size on
// two goroutines (target ≥ 0.8×), and the p99 of session starts while
// their rate stays under the key pool's refill rate (target ≤ 5 ms). It
// runs only when asked:
//
//	MSGBROKER_DEVICE_BENCH=1 go test ./integration -run TestDeviceFigures -v
func TestDeviceFigures(t *testing.T) {
	if os.Getenv("MSGBROKER_DEVICE_BENCH") != "1" {
		t.Skip("set MSGBROKER_DEVICE_BENCH=1 to measure")
	}
	const devices, window = 4, 3 * time.Second
	names := make([]string, 0, 64)
	for i := range 64 {
		names = append(names, fmt.Sprint("bench-", i))
	}
	api := deviceGateway(t, "", "key_pool 64\nmemory_messages 1000000", names...)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	post := func(form url.Values) string {
		resp, err := client.PostForm(api, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}

	// Let the pool fill (64 keys of 2048 bits take ~10 s on one core).
	time.Sleep(15 * time.Second)

	// Session starts at 5/s, under the refill rate, for the 60 sessions
	// not used below.
	var starts []time.Duration
	for _, name := range names[devices:] {
		begin := time.Now()
		if body := post(url.Values{"key": {deviceUser + name}, "status": {"on"}}); len(body) < 100 {
			t.Fatalf("auth: %s", body)
		}
		starts = append(starts, time.Since(begin))
		time.Sleep(200 * time.Millisecond)
	}
	slices.Sort(starts)
	p50, p99 := starts[len(starts)/2], starts[len(starts)*99/100]
	t.Logf("session start at 5/s: p50 %v, p99 %v (%d sessions)", p50, p99, len(starts))

	// Messages: each device pre-seals its messages, then all send at once.
	pubs := make([]*rsa.PublicKey, devices)
	for i := range devices {
		var a struct{ Message string }
		_ = json.Unmarshal([]byte(post(url.Values{"key": {deviceUser + names[i]}, "status": {"on"}})), &a)
		block, _ := pem.Decode([]byte(a.Message))
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		pubs[i] = pub.(*rsa.PublicKey)
	}
	p, _ := devicecrypto.ParsePadding("", "", 0)
	const perDevice = 3000
	sealed := make([][]string, devices)
	for i := range devices {
		for j := range perDevice {
			m, err := p.Seal(pubs[i], 32, fmt.Appendf(nil, `{"device": %d, "n": %d}`, i, j), 1)
			if err != nil {
				t.Fatal(err)
			}
			sealed[i] = append(sealed[i], string(m))
		}
	}
	var delivered atomic.Int64
	deadline := time.Now().Add(window)
	var wg sync.WaitGroup
	begin := time.Now()
	for i := range devices {
		wg.Go(func() {
			for j := 0; j < perDevice && time.Now().Before(deadline); j++ {
				if body := post(url.Values{"key": {deviceUser + names[i]}, "message": {sealed[i][j]}}); body != `{"message": "delivered", "code": 0}` {
					t.Errorf("message: %s", body)
					return
				}
				delivered.Add(1)
			}
		})
	}
	wg.Wait()
	gatewayRate := float64(delivered.Load()) / time.Since(begin).Seconds()

	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	wrapped, _ := rsa.EncryptOAEP(sha256.New(), rand.Reader, &key.PublicKey, make([]byte, 32), nil)
	var raw atomic.Int64
	deadline = time.Now().Add(window)
	begin = time.Now()
	for range 2 {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				if _, err := rsa.DecryptOAEP(sha256.New(), nil, key, wrapped, nil); err != nil {
					t.Error(err)
					return
				}
				raw.Add(1)
			}
		})
	}
	wg.Wait()
	rawRate := float64(raw.Load()) / time.Since(begin).Seconds()
	t.Logf("messages: gateway %.0f/s, bare rsa.DecryptOAEP %.0f/s on 2 goroutines: %.2f×", gatewayRate, rawRate, gatewayRate/rawRate)
}
