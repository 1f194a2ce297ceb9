package directory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"

	"github.com/msgbroker/caddy-msgbroker/internal/phpserial"
)

// WordPress is the directory in a WordPress site's database. A user is the
// WordPress user whose usermeta UUIDKey holds the user id; their devices
// are the PHP-serialized array under DevicesKey, as WordPress's
// update_user_meta writes it. Each device is an array holding at least its
// id (IDField) — or keyed by its id, if it has no IDField —, its name
// (NameField) and its status (StatusField).
//
// The status is written back into that array in place, keeping every
// other byte of it (phpserial), and in the type it already has: a
// boolean, 1/0, or the strings "on"/"off" (also when it is missing).
type WordPress struct {
	DB *sql.DB
	// TablePrefix is WordPress's $table_prefix ("wp_" if empty).
	TablePrefix string
	// UUIDKey and DevicesKey are the meta keys of the user id and the
	// device list.
	UUIDKey, DevicesKey string
	// IDField, NameField and StatusField name a device's fields ("id",
	// "name" and "status" if empty).
	IDField, NameField, StatusField string
}

var tablePrefix = regexp.MustCompile(`^[A-Za-z0-9_]{1,32}$`)

// Validate checks the settings.
func (w *WordPress) Validate() error {
	if w.TablePrefix != "" && !tablePrefix.MatchString(w.TablePrefix) {
		return fmt.Errorf("table prefix %q: want up to 32 letters, digits and underscores", w.TablePrefix)
	}
	if w.UUIDKey == "" || w.DevicesKey == "" {
		return errors.New("the meta keys of the user id and of the device list are required")
	}
	return nil
}

func (w *WordPress) table(name string) string {
	prefix := w.TablePrefix
	if prefix == "" {
		prefix = "wp_"
	}
	return "`" + prefix + name + "`"
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Lookup implements Directory.
func (w *WordPress) Lookup(ctx context.Context, userID, deviceID string) (*Device, error) {
	_, list, err := w.deviceList(ctx, w.DB, userID, "")
	if err != nil {
		return nil, err
	}
	dev := w.find(list, deviceID)
	if dev == nil {
		return nil, ErrNotFound
	}
	d := &Device{UserID: userID, DeviceID: deviceID}
	if name, ok := dev.Get(or(w.NameField, "name")); ok && (name.Kind == phpserial.String || name.Kind == phpserial.Int) {
		d.Name = name.KeyString()
	}
	return d, nil
}

// SetStatus implements Directory. The row is locked from read to write,
// so two devices of one user switching at once both keep their change.
func (w *WordPress) SetStatus(ctx context.Context, userID, deviceID string, on bool) error {
	tx, err := w.DB.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("wordpress: %w", err)
	}
	defer tx.Rollback()
	metaID, list, err := w.deviceList(ctx, tx, userID, " FOR UPDATE")
	if err != nil {
		return err
	}
	dev := w.find(list, deviceID)
	if dev == nil {
		return ErrNotFound
	}
	setStatus(dev, or(w.StatusField, "status"), on)
	q := "UPDATE " + w.table("usermeta") + " SET meta_value = ? WHERE umeta_id = ?"
	if _, err := tx.ExecContext(ctx, q, phpserial.Marshal(list), metaID); err != nil {
		return fmt.Errorf("wordpress: writing the device list: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("wordpress: %w", err)
	}
	return nil
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// deviceList reads the device list of the user whose UUID is userID: the
// first row under DevicesKey, as get_user_meta($id, $key, true) reads it.
// A user without a list, or with one that is not an array, has no devices.
func (w *WordPress) deviceList(ctx context.Context, q querier, userID, lock string) (int64, *phpserial.Value, error) {
	query := "SELECT d.umeta_id, d.meta_value FROM " + w.table("usermeta") + " AS u" +
		" JOIN " + w.table("users") + " AS wu ON wu.ID = u.user_id" +
		" JOIN " + w.table("usermeta") + " AS d ON d.user_id = u.user_id AND d.meta_key = ?" +
		" WHERE u.meta_key = ? AND u.meta_value = ?" +
		" ORDER BY d.umeta_id LIMIT 1" + lock
	var metaID int64
	var raw []byte
	err := q.QueryRowContext(ctx, query, w.DevicesKey, w.UUIDKey, userID).Scan(&metaID, &raw)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, ErrNotFound
	}
	if err != nil {
		return 0, nil, fmt.Errorf("wordpress: reading the device list: %w", err)
	}
	list, err := phpserial.Unmarshal(raw)
	if err != nil || list.Kind != phpserial.Array {
		return 0, nil, fmt.Errorf("%w: the device list of user %s is not a serialized array", ErrNotFound, userID)
	}
	return metaID, list, nil
}

// find returns the device with id deviceID in list, or nil.
func (w *WordPress) find(list *phpserial.Value, deviceID string) *phpserial.Value {
	idField := or(w.IDField, "id")
	for i := range list.Entries {
		dev := &list.Entries[i].Value
		if dev.Kind != phpserial.Array {
			continue
		}
		id, ok := dev.Get(idField)
		if ok && (id.Kind == phpserial.String || id.Kind == phpserial.Int) && id.KeyString() == deviceID {
			return dev
		}
		if !ok && list.Entries[i].Key.KeyString() == deviceID {
			return dev
		}
	}
	return nil
}

// setStatus sets the status field of dev in the type it already has.
func setStatus(dev *phpserial.Value, field string, on bool) {
	v, ok := dev.Get(field)
	if !ok {
		dev.Entries = append(dev.Entries, phpserial.Entry{Key: phpserial.NewString(field)})
		v = &dev.Entries[len(dev.Entries)-1].Value
	}
	switch {
	case v.Kind == phpserial.Bool:
		*v = phpserial.NewBool(on)
	case v.Kind == phpserial.Int && on:
		*v = phpserial.NewInt(1)
	case v.Kind == phpserial.Int:
		*v = phpserial.NewInt(0)
	case on:
		*v = phpserial.NewString("on")
	default:
		*v = phpserial.NewString("off")
	}
}
