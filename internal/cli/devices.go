package cli

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/storage"
)

// deviceJSON is a device as --json prints it.
type deviceJSON struct {
	UserID    string    `json:"user_id"`
	DeviceID  string    `json:"device_id"`
	Name      string    `json:"name"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func deviceOut(d *storage.Device) deviceJSON {
	return deviceJSON{UserID: d.UserID, DeviceID: d.DeviceID, Name: d.Name, Status: d.Status, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt}
}

// Widths of the devices table's columns.
const (
	maxDeviceIDLen   = 64
	maxDeviceNameLen = 255
)

func checkDeviceIDs(userID, deviceID string) error {
	for _, v := range [][2]string{{"USER_ID", userID}, {"DEVICE_ID", deviceID}} {
		if v[1] == "" || len(v[1]) > maxDeviceIDLen || !utf8.ValidString(v[1]) || hasControl(v[1]) {
			return usagef("%s must be 1-%d bytes of UTF-8 without control characters", v[0], maxDeviceIDLen)
		}
	}
	return nil
}

// checkDeviceName refuses a name the device answer could not carry as
// typed: invalid UTF-8 or control characters (as the APIs refuse them in
// every stored text), or more than maxDeviceNameLen bytes.
func checkDeviceName(name string) error {
	if len(name) > maxDeviceNameLen || !utf8.ValidString(name) || hasControl(name) {
		return usagef("--name must be at most %d bytes of UTF-8 without control characters", maxDeviceNameLen)
	}
	return nil
}

// hasControl reports whether s holds a control character.
func hasControl(s string) bool {
	for _, r := range s {
		if isControl(r) {
			return true
		}
	}
	return false
}

func deviceCommand() *cobra.Command {
	cmd := group(&cobra.Command{Use: "device", Short: "Manages the built-in device directory of the device channel"})

	list := &cobra.Command{
		Use:   "list [--user USER_ID]",
		Short: "Lists devices",
		Args:  nargs(0, 0),
		RunE:  caddycmd.WrapCommandFuncForCobra(cmdDeviceList),
	}
	list.Flags().String("user", "", "Only the devices of this user id")

	add := &cobra.Command{
		Use:   "add USER_ID DEVICE_ID [--name NAME] [--status on|off]",
		Short: "Adds a device",
		Long: `Adds a device to the built-in directory. The device channel accepts a key
made of the user id and the device id. The status is the device's connection
state, as in a WordPress directory: the gateway writes on when the device opens
a session and off when it closes it, and accepts a device that is off.`,
		Args: nargs(2, 2),
		RunE: caddycmd.WrapCommandFuncForCobra(cmdDeviceAdd),
	}
	add.Flags().String("name", "", "Display name")
	add.Flags().String("status", storage.DeviceOn, "Initial connection status, on or off (the gateway updates it)")

	remove := &cobra.Command{
		Use:   "remove USER_ID DEVICE_ID [--force]",
		Short: "Removes a device",
		Args:  nargs(2, 2),
		RunE:  caddycmd.WrapCommandFuncForCobra(cmdDeviceRemove),
	}
	forceFlag(remove)

	cmd.AddCommand(list, add, remove)
	return cmd
}

func cmdDeviceList(fl caddycmd.Flags) (int, error) {
	return withServices(fl, database, func(ctx context.Context, out *console, svc *services) error {
		devices, err := svc.Store.Devices.List(ctx, fl.String("user"))
		if err != nil {
			return err
		}
		if out.jsonOut {
			return out.printJSON(jsonList(devices, deviceOut))
		}
		rows := make([][]string, 0, len(devices))
		for _, d := range devices {
			name := d.Name
			if name == "" {
				name = "-"
			}
			rows = append(rows, []string{d.UserID, d.DeviceID, name, d.Status, timeText(d.CreatedAt)})
		}
		return out.table([]string{"USER ID", "DEVICE ID", "NAME", "STATUS", "CREATED"}, rows)
	})
}

func cmdDeviceAdd(fl caddycmd.Flags) (int, error) {
	userID, deviceID, name, status := fl.Arg(0), fl.Arg(1), fl.String("name"), fl.String("status")
	if err := checkDeviceIDs(userID, deviceID); err != nil {
		return exit(err)
	}
	if status != storage.DeviceOn && status != storage.DeviceOff {
		return exit(usagef("--status must be on or off, not %q", status))
	}
	if err := checkDeviceName(name); err != nil {
		return exit(err)
	}
	return withServices(fl, database, func(ctx context.Context, out *console, svc *services) error {
		d := &storage.Device{UserID: userID, DeviceID: deviceID, Name: name, Status: status}
		err := svc.Store.Devices.Add(ctx, d)
		if errors.Is(err, storage.ErrConflict) {
			err = apperr.New(apperr.Conflict, "device_exists", "device %s of user %s already exists", deviceID, userID)
		}
		auditDevice(ctx, svc.Store, "device.add", userID, deviceID, err)
		if err != nil {
			return err
		}
		return out.printResult(deviceOut(d), "Added device %s of user %s (%s).\n", d.DeviceID, d.UserID, d.Status)
	})
}

func cmdDeviceRemove(fl caddycmd.Flags) (int, error) {
	userID, deviceID := fl.Arg(0), fl.Arg(1)
	return withServices(fl, database, func(ctx context.Context, out *console, svc *services) error {
		d, err := svc.Store.Devices.Get(ctx, userID, deviceID)
		if errors.Is(err, storage.ErrNotFound) {
			return apperr.New(apperr.NotFound, "device_not_found", "user %s has no device %s", userID, deviceID)
		}
		if err != nil {
			return err
		}
		if err := out.confirm(fl.Bool("force"), fmt.Sprintf("Remove device %s of user %s?", d.DeviceID, d.UserID)); err != nil {
			return err
		}
		err = svc.Store.Devices.Remove(ctx, userID, deviceID)
		if errors.Is(err, storage.ErrNotFound) {
			err = apperr.New(apperr.NotFound, "device_not_found", "user %s has no device %s", userID, deviceID)
		}
		auditDevice(ctx, svc.Store, "device.remove", userID, deviceID, err)
		if err != nil {
			return err
		}
		return out.printResult(map[string]deviceJSON{"removed": deviceOut(d)}, "Removed device %s of user %s.\n", d.DeviceID, d.UserID)
	})
}

// auditDevice records a change of the device directory; a failed audit
// write is reported as a warning, since the change has happened.
func auditDevice(ctx context.Context, store *storage.Store, action, userID, deviceID string, err error) {
	outcome, details := storage.AuditSuccess, ""
	if err != nil {
		outcome, details = storage.AuditFailure, message(err)
	}
	if aerr := broker.Audit(ctx, store, actor(), action, userID+"/"+deviceID, outcome, details); aerr != nil {
		fmt.Fprintf(stdio.err, "warning: %v\n", aerr)
	}
}
