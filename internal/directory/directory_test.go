package directory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"

	_ "github.com/go-sql-driver/mysql"
	"github.com/uptrace/bun"

	"github.com/msgbroker/caddy-msgbroker/internal/phpserial"
	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

const (
	userA = "0b6f8a52-7c1e-4d3a-9f1e-2b7c4d5e6f70"
	userB = "1c7a9b63-8d2f-4e4b-8a2f-3c8d5e6f7081"
)

func TestBuiltinFindsAndSwitchesDevices(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		store := storage.New(db)
		if err := store.Devices.Add(ctx, &storage.Device{UserID: userA, DeviceID: "phone", Name: "Anna's phone"}); err != nil {
			t.Fatal(err)
		}
		dir := Builtin{Devices: store.Devices}
		d, err := dir.Lookup(ctx, userA, "phone")
		if err != nil || d.Name != "Anna's phone" {
			t.Fatalf("lookup: %+v, %v", d, err)
		}
		for _, tc := range []struct{ user, device string }{{userA, "tablet"}, {userB, "phone"}} {
			if _, err := dir.Lookup(ctx, tc.user, tc.device); err != ErrNotFound {
				t.Errorf("lookup %s/%s: %v, want ErrNotFound", tc.user, tc.device, err)
			}
			if err := dir.SetStatus(ctx, tc.user, tc.device, true); err != ErrNotFound {
				t.Errorf("set status %s/%s: %v, want ErrNotFound", tc.user, tc.device, err)
			}
		}
		if err := dir.SetStatus(ctx, userA, "phone", true); err != nil {
			t.Fatal(err)
		}
		if stored, _ := store.Devices.Get(ctx, userA, "phone"); stored.Status != storage.DeviceOn {
			t.Errorf("status %q, want on", stored.Status)
		}
	})
}

// wordpress creates wp_users and wp_usermeta (WordPress 6's schema) in a
// fresh MariaDB database, with the given users (login → uuid) and device
// lists (uuid → serialized list), and returns the directory over it.
func wordpress(t *testing.T, prefix string, users map[string]string) (*WordPress, *sql.DB) {
	t.Helper()
	db, err := sql.Open("mysql", storagetest.MySQL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	for _, q := range []string{
		"CREATE TABLE `" + prefix + "users` (ID bigint(20) unsigned NOT NULL AUTO_INCREMENT, user_login varchar(60) NOT NULL DEFAULT '', PRIMARY KEY (ID)) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci",
		"CREATE TABLE `" + prefix + "usermeta` (umeta_id bigint(20) unsigned NOT NULL AUTO_INCREMENT, user_id bigint(20) unsigned NOT NULL DEFAULT 0, meta_key varchar(255) DEFAULT NULL, meta_value longtext, PRIMARY KEY (umeta_id), KEY user_id (user_id), KEY meta_key (meta_key(191))) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci",
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	id := 0
	for uuid, list := range users {
		id++
		if _, err := db.ExecContext(ctx, "INSERT INTO `"+prefix+"users` (ID, user_login) VALUES (?, ?)", id, fmt.Sprint("user", id)); err != nil {
			t.Fatal(err)
		}
		for key, value := range map[string]string{"device_uuid": uuid, "devices": list, "nickname": "n"} {
			if _, err := db.ExecContext(ctx, "INSERT INTO `"+prefix+"usermeta` (user_id, meta_key, meta_value) VALUES (?, ?, ?)", id, key, value); err != nil {
				t.Fatal(err)
			}
		}
	}
	w := &WordPress{DB: db, TablePrefix: prefix, UUIDKey: "device_uuid", DevicesKey: "devices"}
	if err := w.Validate(); err != nil {
		t.Fatal(err)
	}
	return w, db
}

func deviceList(t *testing.T, db *sql.DB, prefix, uuid string) string {
	t.Helper()
	var list string
	err := db.QueryRow("SELECT d.meta_value FROM `"+prefix+"usermeta` u JOIN `"+prefix+"usermeta` d ON d.user_id = u.user_id AND d.meta_key = 'devices' WHERE u.meta_key = 'device_uuid' AND u.meta_value = ?", uuid).Scan(&list)
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// As PHP 8.2's serialize() wrote them: a list of devices with ids, and a
// map keyed by device id with a boolean status and a float.
const (
	listWithIDs = `a:2:{i:0;a:3:{s:2:"id";s:5:"phone";s:4:"name";s:11:"Küche Tür";s:6:"status";s:3:"off";}i:1;a:4:{s:2:"id";i:42;s:4:"name";s:3:"Tab";s:6:"status";s:3:"off";s:4:"meta";a:2:{s:5:"added";d:1733136000.5;s:4:"beta";b:1;}}}`
	keyedList   = `a:1:{s:5:"watch";a:2:{s:4:"name";s:5:"Watch";s:6:"status";b:0;}}`
)

func TestWordPressFindsDevicesAndWritesStatusInPlace(t *testing.T) {
	w, db := wordpress(t, "wp_", map[string]string{userA: listWithIDs, userB: keyedList})
	ctx := context.Background()
	for _, tc := range []struct{ user, device, name string }{
		{userA, "phone", "Küche Tür"}, {userA, "42", "Tab"}, {userB, "watch", "Watch"},
	} {
		d, err := w.Lookup(ctx, tc.user, tc.device)
		if err != nil || d.Name != tc.name {
			t.Errorf("lookup %s: %+v, %v", tc.device, d, err)
		}
	}
	for _, tc := range []struct{ user, device string }{{userA, "watch"}, {userB, "phone"}, {"no-such-user", "phone"}, {userA, "0"}} {
		if _, err := w.Lookup(ctx, tc.user, tc.device); !errors.Is(err, ErrNotFound) {
			t.Errorf("lookup %s/%s: %v, want ErrNotFound", tc.user, tc.device, err)
		}
	}

	if err := w.SetStatus(ctx, userA, "42", true); err != nil {
		t.Fatal(err)
	}
	want := `a:2:{i:0;a:3:{s:2:"id";s:5:"phone";s:4:"name";s:11:"Küche Tür";s:6:"status";s:3:"off";}i:1;a:4:{s:2:"id";i:42;s:4:"name";s:3:"Tab";s:6:"status";s:2:"on";s:4:"meta";a:2:{s:5:"added";d:1733136000.5;s:4:"beta";b:1;}}}`
	if got := deviceList(t, db, "wp_", userA); got != want {
		t.Errorf("after on:\n got %s\nwant %s", got, want)
	}
	if err := w.SetStatus(ctx, userB, "watch", true); err != nil {
		t.Fatal(err)
	}
	if got := deviceList(t, db, "wp_", userB); got != `a:1:{s:5:"watch";a:2:{s:4:"name";s:5:"Watch";s:6:"status";b:1;}}` {
		t.Errorf("boolean status: %s", got)
	}
	if err := w.SetStatus(ctx, userA, "42", false); err != nil {
		t.Fatal(err)
	}
	if got := deviceList(t, db, "wp_", userA); got != listWithIDs {
		t.Errorf("on then off is not the original:\n got %s\nwant %s", got, listWithIDs)
	}
}

func TestWordPressListThatIsNotAnArrayHasNoDevices(t *testing.T) {
	w, _ := wordpress(t, "site2_", map[string]string{userA: `s:5:"phone";`, userB: `a:1:{i:0;`})
	for _, user := range []string{userA, userB} {
		if _, err := w.Lookup(context.Background(), user, "phone"); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", user, err)
		}
	}
}

// TestWordPressConcurrentSwitchesOfOneUserKeepBoth switches two devices of
// one user at once, many times; without the row lock one write overwrites
// the other's list.
func TestWordPressConcurrentSwitchesOfOneUserKeepBoth(t *testing.T) {
	w, db := wordpress(t, "wp_", map[string]string{userA: listWithIDs})
	ctx := context.Background()
	for round := range 10 {
		on := round%2 == 0
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, device := range []string{"phone", "42"} {
			wg.Go(func() { errs[i] = w.SetStatus(ctx, userA, device, on) })
		}
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			t.Fatal(errs)
		}
		for _, device := range []string{"phone", "42"} {
			d := w.find(mustList(t, deviceList(t, db, "wp_", userA)), device)
			status, _ := d.Get("status")
			if want := map[bool]string{true: "on", false: "off"}[on]; status.Str != want {
				t.Fatalf("round %d: %s is %q, want %q", round, device, status.Str, want)
			}
		}
	}
}

func TestWordPressRefusesABadTablePrefix(t *testing.T) {
	for _, prefix := range []string{"wp`", "wp; DROP", "a-b"} {
		w := &WordPress{TablePrefix: prefix, UUIDKey: "a", DevicesKey: "b"}
		if err := w.Validate(); err == nil {
			t.Errorf("prefix %q accepted", prefix)
		}
	}
}

func mustList(t *testing.T, s string) *phpserial.Value {
	t.Helper()
	v, err := phpserial.Unmarshal([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return v
}
