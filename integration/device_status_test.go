package integration

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msgbroker/caddy-msgbroker/internal/testcaddy"
	"github.com/msgbroker/caddy-msgbroker/storage"
)

// TestBuiltinDeviceStatusIsTheConnectionState adds a device to the
// built-in directory with status off (`device add --status off`): it is
// not refused; auth opens its session and writes on, logout writes off,
// and it can open a session again — the status is the connection state,
// as with WordPress, not a switch that locks the device out.
func TestBuiltinDeviceStatusIsTheConnectionState(t *testing.T) {
	dir, port := t.TempDir(), testcaddy.FreePort(t)
	testcaddy.Start(t, fmt.Sprintf(`{
	msgbroker {
		database sqlite %[1]s/broker.db
		dev_keys %[1]s/secrets
	}
}

http://127.0.0.1:%[2]d {
	handle /api {
		msgbroker_device {
			key_pool 2
		}
	}
}
`, dir, port))
	db, err := storage.Open(context.Background(), storage.Config{Driver: storage.DriverSQLite, DSN: filepath.Join(dir, "broker.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	devices := storage.New(db).Devices
	if err := devices.Add(context.Background(), &storage.Device{UserID: deviceUser, DeviceID: "tablet", Name: "Tablet", Status: storage.DeviceOff}); err != nil {
		t.Fatal(err)
	}
	api := fmt.Sprintf("http://127.0.0.1:%d/api", port)
	key := deviceUser + "tablet"
	status := func(want string) {
		t.Helper()
		d, err := devices.Get(context.Background(), deviceUser, "tablet")
		if err != nil {
			t.Fatal(err)
		}
		if d.Status != want {
			t.Errorf("status in the devices table = %q, want %q", d.Status, want)
		}
	}
	auth := func() {
		t.Helper()
		code, _, body := postDevice(t, api, url.Values{"key": {key}, "status": {"on"}})
		if code != http.StatusOK || !strings.Contains(body, `"code": 0`) || !strings.HasSuffix(body, `"name": "Tablet"}`) {
			t.Fatalf("auth of a device that is off = %d %s, want its public key", code, body)
		}
	}

	auth()
	status(storage.DeviceOn)
	if code, _, body := postDevice(t, api, url.Values{"key": {key}, "status": {"off"}}); body != `{"message": "deleted", "code": 0}` {
		t.Fatalf("logout = %d %s", code, body)
	}
	status(storage.DeviceOff)
	auth()
	status(storage.DeviceOn)
}
