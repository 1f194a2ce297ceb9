package directory

import (
	"context"
	"errors"

	"github.com/msgbroker/caddy-msgbroker/storage"
)

// Builtin is the directory in the broker's own devices table, managed with
// `caddy msgbroker device add|list|remove`.
type Builtin struct {
	Devices *storage.DeviceRepo
}

// Lookup implements Directory.
func (b Builtin) Lookup(ctx context.Context, userID, deviceID string) (*Device, error) {
	d, err := b.Devices.Get(ctx, userID, deviceID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return &Device{UserID: d.UserID, DeviceID: d.DeviceID, Name: d.Name}, nil
}

// SetStatus implements Directory.
func (b Builtin) SetStatus(ctx context.Context, userID, deviceID string, on bool) error {
	status := storage.DeviceOff
	if on {
		status = storage.DeviceOn
	}
	err := b.Devices.SetStatus(ctx, userID, deviceID, status)
	if errors.Is(err, storage.ErrNotFound) {
		return ErrNotFound
	}
	return err
}
