package device_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/msgbroker/caddy-msgbroker/internal/devicecrypto"
	"github.com/msgbroker/caddy-msgbroker/internal/testcaddy"
)

// TestDeviceDecryptsWithTheConfiguredPaddingOnly sends, for each padding
// setting, a message from a client using it (delivered) and one from a
// client using another (undecryptable): modes are never tried in turn.
func TestDeviceDecryptsWithTheConfiguredPaddingOnly(t *testing.T) {
	for _, tc := range []struct {
		options       string
		right, wrong  [2]string // scheme, MGF1 hash
		rightKeyBytes int
	}{
		{"padding oaep-sha1", [2]string{"oaep-sha1", ""}, [2]string{"oaep-sha256", ""}, 16},
		{"mgf1_hash sha1", [2]string{"oaep-sha256", "sha1"}, [2]string{"oaep-sha256", ""}, 32},
		{"padding pkcs1v15\naes_key_size 16", [2]string{"pkcs1v15", ""}, [2]string{"oaep-sha256", ""}, 16},
	} {
		t.Run(strings.ReplaceAll(tc.options, "\n", " "), func(t *testing.T) {
			api := gateway(t, "", tc.options)
			pub := auth(t, api)
			send := func(scheme [2]string, keyBytes int, text string) string {
				size := 0
				if scheme[0] == devicecrypto.PKCS1v15 {
					size = keyBytes
				}
				p, err := devicecrypto.ParsePadding(scheme[0], scheme[1], size)
				if err != nil {
					t.Fatal(err)
				}
				msg, err := p.Seal(pub, keyBytes, []byte(text), 1)
				if err != nil {
					t.Fatal(err)
				}
				_, body := post(t, api, url.Values{"key": {key}, "message": {string(msg)}})
				return body
			}
			if got := send(tc.right, tc.rightKeyBytes, "right"); got != `{"message": "delivered", "code": 0}` {
				t.Errorf("client with the configured padding: %s", got)
			}
			if got := send(tc.wrong, 32, "wrong"); got != `{"message": "undecryptable message", "code": 6}` {
				t.Errorf("client with another padding: %s", got)
			}
		})
	}
}

// TestDeviceSessionsStartWhenTheKeyPoolIsEmpty opens more sessions at once
// than the pool holds: every one gets a distinct, working key.
func TestDeviceSessionsStartWhenTheKeyPoolIsEmpty(t *testing.T) {
	api := gateway(t, "", "key_pool 1")
	seen := map[string]bool{}
	for i := range 4 {
		k := fmt.Sprint(key, "-", i)
		status, body := post(t, api, url.Values{"key": {k}, "status": {"on"}})
		if status != 200 || !strings.HasPrefix(body, `{"message": "-----BEGIN PUBLIC KEY-----`) || seen[body] {
			t.Fatalf("session %d: %d %s", i, status, body)
		}
		seen[body] = true
	}
}

// TestDeviceSessionsSurviveAReload reloads the config (another
// max_failures) between auth and message: the in-process sessions and
// messages are kept, so the device notices nothing.
func TestDeviceSessionsSurviveAReload(t *testing.T) {
	reload, api := startGateway(t, "", "max_failures 5")
	pub := auth(t, api)
	expect(t, api, url.Values{"key": {key}, "message": {sealed(t, pub, "before")}}, 200, `{"message": "delivered", "code": 0}`)
	reload("max_failures 6")
	expect(t, api, url.Values{"key": {key}, "message": {sealed(t, pub, "before")}}, 200, `{"message": "duplicate", "code": 1}`)
	expect(t, api, url.Values{"key": {key}, "message": {sealed(t, pub, "after")}}, 200, `{"message": "delivered", "code": 0}`)
	expect(t, api, url.Values{"key": {key}, "status": {"on"}}, 200, `{"message": "already auth", "code": 1}`)
}

// TestDeviceMetrics checks the device series on Caddy's metrics endpoint.
func TestDeviceMetrics(t *testing.T) {
	api := gateway(t, "", "")
	pub := auth(t, api)
	expect(t, api, url.Values{"key": {key}, "message": {sealed(t, pub, "metrics "+t.Name())}}, 200, `{"message": "delivered", "code": 0}`)
	expect(t, api, url.Values{"key": {key}, "message": {`{"encryptedKey":"AAAA","iv":"AAAAAAAAAAAAAAAAAAAAAA==","ciphertext":"AAAAAAAAAAAAAAAAAAAAAA==","minute":1}`}}, 400, `{"message": "undecryptable message", "code": 6}`)
	status, body, err := lastServer.AdminGet("/metrics")
	if err != nil || status != 200 {
		t.Fatalf("metrics: %d %v", status, err)
	}
	for _, series := range []string{
		"msgbroker_device_sessions_active 1",
		"msgbroker_device_key_pool_depth ",
		"msgbroker_device_key_pool_refills_total ",
		"msgbroker_device_key_pool_misses_total ",
		"msgbroker_device_sessions_opened_total ",
		`msgbroker_device_messages_total{result="delivered"} `,
		`msgbroker_device_messages_total{result="rejected"} `,
		"msgbroker_device_decryption_failures_total ",
	} {
		if !strings.Contains(string(body), "\n"+series) {
			t.Errorf("no %q in the metrics", series)
		}
	}
}

// TestDeviceRedisStoreNeedsTheAppsRedis refuses the config at load, not at
// the first request.
func TestDeviceRedisStoreNeedsTheAppsRedis(t *testing.T) {
	srv := testcaddy.Start(t, fmt.Sprintf("{\n}\nhttp://127.0.0.1:%d {\n\trespond ok\n}\n", testcaddy.FreePort(t)))
	cfg, err := srv.Adapt(fmt.Sprintf(`{
	msgbroker {
		database sqlite %s/broker.db
		dev_keys %[1]s/secrets
	}
}

http://127.0.0.1:%d {
	msgbroker_device {
		store redis
	}
}
`, t.TempDir(), testcaddy.FreePort(t)))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.PostLoad(cfg); err == nil || !strings.Contains(err.Error(), "store redis needs the redis setting") {
		t.Errorf("load: %v", err)
	}
}

// TestDeviceRefusesMinutesOutsideTheWindow sends minutes inside and outside
// minute_window 2m, far enough from its edges that the clock moving on to
// the next minute during the test changes nothing.
func TestDeviceRefusesMinutesOutsideTheWindow(t *testing.T) {
	api := gateway(t, "", "minute_window 2m")
	pub := auth(t, api)
	p, _ := devicecrypto.ParsePadding("", "", 0)
	now := time.Now().Unix() / 60
	for _, tc := range []struct {
		minute int64
		want   string
	}{
		{now, `{"message": "delivered", "code": 0}`},
		{now - 1, `{"message": "delivered", "code": 0}`},
		{now + 1, `{"message": "delivered", "code": 0}`},
		{now - 4, `{"message": "stale message", "code": 10}`},
		{now + 4, `{"message": "stale message", "code": 10}`},
	} {
		msg, err := p.Seal(pub, 32, fmt.Appendf(nil, "at %d", tc.minute), tc.minute)
		if err != nil {
			t.Fatal(err)
		}
		if _, got := post(t, api, url.Values{"key": {key}, "message": {string(msg)}}); got != tc.want {
			t.Errorf("minute now%+d: %s, want %s", tc.minute-now, got, tc.want)
		}
	}
}
