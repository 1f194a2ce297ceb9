package device_test

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/msgbroker/caddy-msgbroker/internal/apivalidate"
	"github.com/msgbroker/caddy-msgbroker/internal/devicecrypto"
	"github.com/msgbroker/caddy-msgbroker/internal/testcaddy"
	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

const user = "0b6f8a52-7c1e-4d3a-9f1e-2b7c4d5e6f70"

// device is new in every test process, so sessions and messages left in
// the shared Redis by another run cannot interfere.
var (
	device = "phone-" + rand.Text()[:10]
	key    = user + device
)

// gateway starts Caddy with the device channel on /api (options inside its
// block, redis the app's redis address or empty) and the devices of the
// built-in directory.
func gateway(t testing.TB, redisAddr, options string) string {
	t.Helper()
	_, api := startGateway(t, redisAddr, options)
	return api
}

// lastServer is the Caddy the last startGateway started.
var lastServer *testcaddy.Server

// startGateway is gateway that also returns the config maker, for reloads.
func startGateway(t testing.TB, redisAddr, options string) (reload func(options string), api string) {
	t.Helper()
	dir, port := t.TempDir(), testcaddy.FreePort(t)
	config := func(options string) string {
		if !strings.Contains(options, "key_pool") {
			options += "\nkey_pool 2"
		}
		redis := ""
		if redisAddr != "" {
			redis = "redis " + redisAddr
		}
		return fmt.Sprintf(`{
	msgbroker {
		database sqlite %[1]s/msgbroker.db
		dev_keys %[1]s/secrets
		%[3]s
	}
}

http://127.0.0.1:%[2]d {
	handle /api {
		msgbroker_device {
			%[4]s
		}
	}
}
`, dir, port, redis, options)
	}
	srv := testcaddy.Start(t, config(options))
	lastServer = srv
	reload = func(options string) {
		if err := srv.Reload(config(options)); err != nil {
			t.Fatal(err)
		}
		// The old server closes its idle keep-alive connections as it
		// stops; a POST sent on one of them in that instant ends in EOF
		// and Go does not retry a POST. A device reconnects; so does the
		// test.
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	}
	db, err := storage.Open(context.Background(), storage.Config{Driver: storage.DriverSQLite, DSN: filepath.Join(dir, "msgbroker.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The device the tests use, and four more for tests that open
	// several sessions.
	for _, id := range []string{device, device + "-0", device + "-1", device + "-2", device + "-3"} {
		if err := storage.New(db).Devices.Add(context.Background(), &storage.Device{UserID: user, DeviceID: id, Name: `Anna's "phone" <1>`}); err != nil {
			t.Fatal(err)
		}
	}
	return reload, fmt.Sprintf("http://127.0.0.1:%d/api", port)
}

func post(t *testing.T, api string, form url.Values) (int, string) {
	t.Helper()
	resp, err := apivalidate.Client(t, &http.Client{Timeout: 20 * time.Second}).PostForm(api, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("content type %q", ct)
	}
	return resp.StatusCode, string(body)
}

func expect(t *testing.T, api string, form url.Values, status int, body string) {
	t.Helper()
	gotStatus, got := post(t, api, form)
	if gotStatus != status || got != body {
		t.Errorf("%v: got %d %s, want %d %s", form, gotStatus, got, status, body)
	}
}

var authAnswer = regexp.MustCompile(`^\{"message": "(-----BEGIN PUBLIC KEY-----\\n[A-Za-z0-9+/=\\n]+-----END PUBLIC KEY-----\\n)", "code": 0, "name": "Anna's \\"phone\\" <1>"\}$`)

// auth opens an RSA session and returns its public key.
func auth(t *testing.T, api string) *rsa.PublicKey {
	t.Helper()
	status, body := post(t, api, url.Values{"key": {key}, "status": {"on"}})
	m := authAnswer.FindStringSubmatch(body)
	if status != http.StatusOK || m == nil {
		t.Fatalf("auth: %d %s", status, body)
	}
	var pemText string
	if err := json.Unmarshal([]byte(`"`+m[1]+`"`), &pemText); err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode([]byte(pemText))
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return pub.(*rsa.PublicKey)
}

func sealed(t *testing.T, pub *rsa.PublicKey, text string) string {
	t.Helper()
	p, _ := devicecrypto.ParsePadding("", "", 0)
	msg, err := p.Seal(pub, 32, []byte(text), 29381234)
	if err != nil {
		t.Fatal(err)
	}
	return string(msg)
}

// eachStore runs fn against the in-process store and against Redis.
func eachStore(t *testing.T, options string, fn func(t *testing.T, api string)) {
	t.Run("memory", func(t *testing.T) { fn(t, gateway(t, "", options)) })
	t.Run("redis", func(t *testing.T) {
		addr := storagetest.Redis(t)
		// Sessions go to database 14 under the process's own key and
		// messages to database 15 under a prefix of the test's own; both
		// are deleted afterwards.
		prefix := "msgbroker_test_" + rand.Text() + ":"
		t.Cleanup(func() { cleanRedis(t, addr, prefix) })
		fn(t, gateway(t, addr, options+"\nstore redis\nsessions_db 14\nmessages_db 15\nmessage_prefix "+prefix))
	})
}

func cleanRedis(t *testing.T, addr, prefix string) {
	ctx := context.Background()
	sessions := redis.NewClient(&redis.Options{Addr: addr, DB: 14})
	defer sessions.Close()
	sessions.Del(ctx, "session:"+key)
	messages := redis.NewClient(&redis.Options{Addr: addr, DB: 15})
	defer messages.Close()
	iter := messages.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		messages.Del(ctx, iter.Val())
	}
}

func TestDeviceAnswersAreTheOriginalsByteForByte(t *testing.T) {
	eachStore(t, "", func(t *testing.T, api string) {
		msg := func(text string) url.Values { return url.Values{"key": {key}, "message": {text}} }
		expect(t, api, url.Values{"key": {user + "tablet"}, "status": {"on"}}, 200, `{"message": "not found", "code": 2}`)
		expect(t, api, url.Values{"key": {"1c7a9b63-8d2f-4e4b-8a2f-3c8d5e6f7081" + device}, "status": {"on"}}, 200, `{"message": "not found", "code": 2}`)
		expect(t, api, url.Values{"key": {"short"}, "status": {"on"}}, 200, `{"message": "not found", "code": 2}`)
		expect(t, api, msg("{}"), 200, `{"message": "not found", "code": 2}`)
		pub := auth(t, api)
		expect(t, api, url.Values{"key": {key}, "status": {"on"}}, 200, `{"message": "already auth", "code": 1}`)
		first := sealed(t, pub, "temperature 21.5 °C "+t.Name())
		expect(t, api, msg(first), 200, `{"message": "delivered", "code": 0}`)
		expect(t, api, msg(sealed(t, pub, "another "+t.Name())), 200, `{"message": "delivered", "code": 0}`)
		expect(t, api, msg(first), 200, `{"message": "duplicate", "code": 1}`)
		// The same text encrypted again is the same message.
		expect(t, api, msg(sealed(t, pub, "temperature 21.5 °C "+t.Name())), 200, `{"message": "duplicate", "code": 1}`)
		expect(t, api, url.Values{"key": {key}, "status": {"off"}}, 200, `{"message": "deleted", "code": 0}`)
		expect(t, api, url.Values{"key": {key}, "status": {"off"}}, 200, `{"message": "not found", "code": 2}`)
		expect(t, api, msg(sealed(t, pub, "after logout "+t.Name())), 200, `{"message": "not found", "code": 2}`)
	})
}

func TestDeviceRefusesBadRequestsWithTheirOwnCodes(t *testing.T) {
	api := gateway(t, "", "max_message_size 1KiB")
	pub := auth(t, api)
	for _, tc := range []struct {
		name string
		form url.Values
		body string
	}{
		{"no key", url.Values{"status": {"on"}}, `{"message": "invalid request", "code": 3}`},
		{"empty key", url.Values{"key": {""}, "status": {"on"}}, `{"message": "invalid request", "code": 3}`},
		{"key too long", url.Values{"key": {strings.Repeat("k", 256)}, "status": {"on"}}, `{"message": "invalid request", "code": 3}`},
		{"neither status nor message", url.Values{"key": {key}}, `{"message": "invalid request", "code": 3}`},
		{"both status and message", url.Values{"key": {key}, "status": {"on"}, "message": {"x"}}, `{"message": "invalid request", "code": 3}`},
		{"unknown status", url.Values{"key": {key}, "status": {"ON"}}, `{"message": "invalid status", "code": 4}`},
		{"unknown mode", url.Values{"key": {key}, "status": {"on"}, "mode": {"ecies"}}, `{"message": "invalid mode", "code": 9}`},
		{"not JSON", url.Values{"key": {key}, "message": {"hello"}}, `{"message": "malformed message", "code": 5}`},
		{"bad base64", url.Values{"key": {key}, "message": {`{"encryptedKey":"!!","iv":"AAAAAAAAAAAAAAAAAAAAAA==","ciphertext":"AAAAAAAAAAAAAAAAAAAAAA==","minute":1}`}}, `{"message": "malformed message", "code": 5}`},
		{"ciphertext over max_message_size", url.Values{"key": {key}, "message": {sealed(t, pub, strings.Repeat("x", 1024))}}, `{"message": "malformed message", "code": 5}`},
		{"body over the limit", url.Values{"key": {key}, "message": {strings.Repeat("x", 20<<10)}}, `{"message": "too large", "code": 7}`},
	} {
		status, body := post(t, api, tc.form)
		if status != http.StatusBadRequest || body != tc.body {
			t.Errorf("%s: got %d %s, want 400 %s", tc.name, status, body, tc.body)
		}
	}
	resp, err := http.Get(api)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || string(body) != `{"message": "method not allowed", "code": 3}` || resp.Header.Get("Allow") != "POST" {
		t.Errorf("GET: %d %s", resp.StatusCode, body)
	}
	// The session survived all of that.
	expect(t, api, url.Values{"key": {key}, "message": {sealed(t, pub, "still open")}}, 200, `{"message": "delivered", "code": 0}`)
}

func TestDeviceClosesTheSessionAfterMaxFailedDecryptions(t *testing.T) {
	eachStore(t, "max_failures 3", func(t *testing.T, api string) {
		pub := auth(t, api)
		other, _ := devicecrypto.NewKeyPool(1, 2048)
		otherKey, _ := other.Get()
		other.Close()
		wrongKey := sealed(t, &otherKey.Private.PublicKey, "x")
		tampered := []byte(sealed(t, pub, "a message of two blocks...."))
		var env map[string]any
		_ = json.Unmarshal(tampered, &env)
		ct, _ := base64.StdEncoding.DecodeString(env["ciphertext"].(string))
		ct[len(ct)-17] ^= 0xff
		env["ciphertext"] = base64.StdEncoding.EncodeToString(ct)
		tamperedMsg, _ := json.Marshal(env)
		for _, m := range []string{wrongKey, string(tamperedMsg), wrongKey} {
			expect(t, api, url.Values{"key": {key}, "message": {m}}, 400, `{"message": "undecryptable message", "code": 6}`)
		}
		// The third failure closed the session: a good message finds none.
		expect(t, api, url.Values{"key": {key}, "message": {sealed(t, pub, "late "+t.Name())}}, 200, `{"message": "not found", "code": 2}`)
		auth(t, api)
	})
}

func TestDeviceHPKESession(t *testing.T) {
	api := gateway(t, "", "")
	status, body := post(t, api, url.Values{"key": {key}, "status": {"on"}, "mode": {"hpke"}})
	m := regexp.MustCompile(`^\{"message": "([A-Za-z0-9+/]{43}=)", "code": 0, "name": "Anna's \\"phone\\" <1>"\}$`).FindStringSubmatch(body)
	if status != 200 || m == nil {
		t.Fatalf("hpke auth: %d %s", status, body)
	}
	raw, _ := base64.StdEncoding.DecodeString(m[1])
	pub, err := ecdh.X25519().NewPublicKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	send := func(info []byte, text string) (int, string) {
		enc, ct, err := devicecrypto.SealHPKE(pub, info, []byte("29381234"), []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := json.Marshal(map[string]any{"enc": enc, "ciphertext": ct, "minute": 29381234})
		return post(t, api, url.Values{"key": {key}, "message": {string(msg)}})
	}
	info := devicecrypto.HPKEInfo(user, device)
	for _, tc := range []struct {
		info []byte
		text string
		want string
	}{
		{info, "hello", `{"message": "delivered", "code": 0}`},
		{info, "hello", `{"message": "duplicate", "code": 1}`},
		{devicecrypto.HPKEInfo(user, "phone-2"), "moved", `{"message": "undecryptable message", "code": 6}`},
	} {
		if _, got := send(tc.info, tc.text); got != tc.want {
			t.Errorf("%q: got %s, want %s", tc.text, got, tc.want)
		}
	}
}

func TestDeviceAcceptsMultipartForms(t *testing.T) {
	api := gateway(t, "", "")
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("key", key)
	_ = mw.WriteField("status", "on")
	_ = mw.Close()
	resp, err := apivalidate.Client(t, &http.Client{}).Post(api, mw.FormDataContentType(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !authAnswer.Match(body) {
		t.Errorf("multipart auth: %d %s", resp.StatusCode, body)
	}
}

func TestDeviceAnswers503WhenRedisIsDown(t *testing.T) {
	api := gateway(t, fmt.Sprintf("127.0.0.1:%d", testcaddy.FreePort(t)), "store redis")
	client := apivalidate.Client(t, &http.Client{Timeout: 20 * time.Second})
	resp, err := client.PostForm(api, url.Values{"key": {key}, "status": {"on"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || string(body) != `{"message": "unavailable", "code": 8}` || resp.Header.Get("Retry-After") == "" {
		t.Errorf("redis down: %d %s", resp.StatusCode, body)
	}
}
