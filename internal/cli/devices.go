package cli

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/modules/msgbroker"
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
		if v[1] == "" || len(v[1]) > maxDeviceIDLen || !utf8.ValidString(v[1]) {
			return usageErrorf("%s must be 1-%d bytes of UTF-8", v[0], maxDeviceIDLen)
		}
	}
	return nil
}

func (c *cli) deviceCommand() *cobra.Command {
	cmd := c.group(&cobra.Command{Use: "device", Short: "Manages the built-in device directory of the device channel"})

	var user string
	list := &cobra.Command{
		Use:   "list [--user USER_ID]",
		Short: "Lists devices",
		Args:  c.args(0, 0),
	}
	list.Flags().StringVar(&user, "user", "", "Only the devices of this user id")
	list.RunE = c.run(func(cmd *cobra.Command, _ []string) error {
		return c.withOffline(cmd, false, func(ctx context.Context, off *msgbroker.Services) error {
			devices, err := off.Store.Devices.List(ctx, user)
			if err != nil {
				return err
			}
			if c.jsonOut {
				return c.printJSON(jsonList(devices, deviceOut))
			}
			rows := make([][]string, 0, len(devices))
			for _, d := range devices {
				name := d.Name
				if name == "" {
					name = "-"
				}
				rows = append(rows, []string{d.UserID, d.DeviceID, name, d.Status, timeText(d.CreatedAt)})
			}
			return c.table([]string{"USER ID", "DEVICE ID", "NAME", "STATUS", "CREATED"}, rows)
		})
	})

	var name, status string
	add := &cobra.Command{
		Use:   "add USER_ID DEVICE_ID [--name NAME] [--status on|off]",
		Short: "Adds a device",
		Long: `Adds a device to the built-in directory. The device channel accepts a key
made of the user id and the device id; a device that is off is refused.`,
		Args: c.args(2, 2),
	}
	add.Flags().StringVar(&name, "name", "", "Display name")
	add.Flags().StringVar(&status, "status", storage.DeviceOn, "Initial status: on or off")
	add.RunE = c.run(func(cmd *cobra.Command, args []string) error {
		if err := checkDeviceIDs(args[0], args[1]); err != nil {
			return err
		}
		if status != storage.DeviceOn && status != storage.DeviceOff {
			return usageErrorf("--status must be on or off, not %q", status)
		}
		if len(name) > maxDeviceNameLen {
			return usageErrorf("--name may have at most %d bytes", maxDeviceNameLen)
		}
		return c.withOffline(cmd, false, func(ctx context.Context, off *msgbroker.Services) error {
			d := &storage.Device{UserID: args[0], DeviceID: args[1], Name: name, Status: status}
			err := off.Store.Devices.Add(ctx, d)
			if errors.Is(err, storage.ErrConflict) {
				err = apperr.New(apperr.Conflict, "device_exists", "device %s of user %s already exists", args[1], args[0])
			}
			c.auditDevice(ctx, off.Store, "device.add", args[0], args[1], err)
			if err != nil {
				return err
			}
			return c.printResult(deviceOut(d), "Added device %s of user %s (%s).\n", d.DeviceID, d.UserID, d.Status)
		})
	})

	var force bool
	remove := &cobra.Command{
		Use:   "remove USER_ID DEVICE_ID [--force]",
		Short: "Removes a device",
		Args:  c.args(2, 2),
	}
	forceFlag(remove, &force)
	remove.RunE = c.run(func(cmd *cobra.Command, args []string) error {
		return c.withOffline(cmd, false, func(ctx context.Context, off *msgbroker.Services) error {
			d, err := off.Store.Devices.Get(ctx, args[0], args[1])
			if errors.Is(err, storage.ErrNotFound) {
				return apperr.New(apperr.NotFound, "device_not_found", "user %s has no device %s", args[0], args[1])
			}
			if err != nil {
				return err
			}
			if err := c.confirm(force, fmt.Sprintf("Remove device %s of user %s?", d.DeviceID, d.UserID)); err != nil {
				return err
			}
			err = off.Store.Devices.Remove(ctx, args[0], args[1])
			if errors.Is(err, storage.ErrNotFound) {
				err = apperr.New(apperr.NotFound, "device_not_found", "user %s has no device %s", args[0], args[1])
			}
			c.auditDevice(ctx, off.Store, "device.remove", args[0], args[1], err)
			if err != nil {
				return err
			}
			return c.printResult(map[string]deviceJSON{"removed": deviceOut(d)}, "Removed device %s of user %s.\n", d.DeviceID, d.UserID)
		})
	})

	cmd.AddCommand(list, add, remove)
	return cmd
}

// auditDevice records a change of the device directory; a failed audit
// write is reported as a warning, since the change has happened.
func (c *cli) auditDevice(ctx context.Context, store *storage.Store, action, userID, deviceID string, err error) {
	outcome, details := storage.AuditSuccess, ""
	if err != nil {
		outcome, details = storage.AuditFailure, message(err)
	}
	if aerr := broker.Audit(ctx, store, actor(), action, userID+"/"+deviceID, outcome, details); aerr != nil {
		fmt.Fprintf(c.io.err, "warning: %v\n", aerr)
	}
}
