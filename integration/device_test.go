package integration

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"

	"github.com/msgbroker/caddy-msgbroker/internal/sessions"
	"github.com/msgbroker/caddy-msgbroker/internal/testcaddy"
	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

const deviceUser = "0b6f8a52-7c1e-4d3a-9f1e-2b7c4d5e6f70"

// deviceGateway starts Caddy with the device channel on /api, its options
// in deviceOptions and the msgbroker app's extra options in appOptions,
// and adds devices to the built-in directory. It returns the API's URL.
func deviceGateway(t *testing.T, appOptions, deviceOptions string, devices ...string) string {
	t.Helper()
	_, api := deviceGatewayServer(t, appOptions, deviceOptions, devices...)
	return api
}

// deviceGatewayServer is deviceGateway that also returns the server (for
// its admin endpoint's metrics). Beside /api it serves the browser example
// client under /device-client/, as the README shows.
func deviceGatewayServer(t *testing.T, appOptions, deviceOptions string, devices ...string) (*testcaddy.Server, string) {
	t.Helper()
	dir, port := t.TempDir(), testcaddy.FreePort(t)
	browserClient, err := filepath.Abs("../examples/clients/device/browser")
	if err != nil {
		t.Fatal(err)
	}
	srv := testcaddy.Start(t, fmt.Sprintf(`{
	msgbroker {
		database sqlite %[1]s/broker.db
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
	handle_path /device-client/* {
		root * %[5]s
		file_server
	}
}
`, dir, port, appOptions, deviceOptions, browserClient))
	db, err := storage.Open(context.Background(), storage.Config{Driver: storage.DriverSQLite, DSN: filepath.Join(dir, "broker.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	addDevices(t, db, devices...)
	return srv, fmt.Sprintf("http://127.0.0.1:%d/api", port)
}

func addDevices(t *testing.T, db *bun.DB, devices ...string) {
	t.Helper()
	for _, d := range devices {
		if err := storage.New(db).Devices.Add(context.Background(), &storage.Device{UserID: deviceUser, DeviceID: d, Name: "device " + d}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDeviceExampleClientCompletesSessions builds the example device and
// runs it, in RSA and in HPKE mode, and the browser example (under Node,
// when installed), against a gateway with the in-process
// store and one with Redis, whose stream must then hold every message.
func TestDeviceExampleClientCompletesSessions(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example device client")
	}
	client := filepath.Join(t.TempDir(), "device")
	if out, err := exec.Command("go", "build", "-o", client, "../examples/clients/device").CombinedOutput(); err != nil {
		t.Fatalf("building the example device: %v\n%s", err, out)
	}
	suffix := strings.ToLower(rand.Text()[:8])
	rsaDevice, hpkeDevice, jsDevice := "rsa-"+suffix, "hpke-"+suffix, "js-"+suffix
	_, nodeErr := exec.LookPath("node")
	run := func(t *testing.T, api string) {
		for _, c := range []struct{ device, mode string }{{rsaDevice, "rsa"}, {hpkeDevice, "hpke"}, {jsDevice, "js"}} {
			var cmd *exec.Cmd
			switch {
			case c.mode != "js":
				cmd = exec.Command(client, "-api", api, "-key", deviceUser+c.device, "-mode", c.mode, "-n", "3")
			case nodeErr == nil:
				// The browser client's code, run by Node's WebCrypto.
				cmd = exec.Command("node", "../examples/clients/device/browser/node.mjs", api, deviceUser+c.device, "3")
			case os.Getenv(storagetest.EnvRequireServices) == "1":
				t.Fatal("node is required to run the browser client's code")
			default:
				t.Log("node is not installed: the browser client is not run")
				continue
			}
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "message 3: duplicate") || !strings.HasSuffix(string(out), "session closed\n") {
				t.Fatalf("%s: %v\n%s", c.mode, err, out)
			}
		}
	}
	t.Run("memory", func(t *testing.T) {
		run(t, deviceGateway(t, "", "key_pool 2", rsaDevice, hpkeDevice, jsDevice))
	})
	t.Run("redis", func(t *testing.T) {
		addr := storagetest.Redis(t)
		prefix := "msgbroker_it_" + rand.Text() + ":"
		messages := redis.NewClient(&redis.Options{Addr: addr, DB: 15})
		t.Cleanup(func() {
			defer messages.Close()
			ctx := context.Background()
			iter := messages.Scan(ctx, 0, prefix+"*", 1000).Iterator()
			for iter.Next(ctx) {
				messages.Del(ctx, iter.Val())
			}
		})
		api := deviceGateway(t, "redis "+addr, fmt.Sprintf("key_pool 2\nstore redis\nsessions_db 14\nmessages_db 15\nmessage_prefix %[1]s\nstream %[1]sstream", prefix),
			rsaDevice, hpkeDevice, jsDevice)
		run(t, api)
		entries, err := messages.XRange(context.Background(), prefix+"stream", "-", "+").Result()
		want := 6
		if nodeErr == nil {
			want = 9
		}
		if err != nil || len(entries) != want {
			t.Fatalf("stream: %d entries, %v", len(entries), err)
		}
		for _, e := range entries {
			var r sessions.Record
			if err := json.Unmarshal([]byte(e.Values["record"].(string)), &r); err != nil {
				t.Fatal(err)
			}
			stored := messages.Get(context.Background(), prefix+r.ID).Val()
			if r.UserID != deviceUser || !strings.HasPrefix(r.Data, `{"reading":`) || stored != e.Values["record"] || len(r.ID) != 64 {
				t.Errorf("record %+v, stored %s", r, stored)
			}
		}
	})
}
