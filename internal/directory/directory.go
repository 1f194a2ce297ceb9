// Package directory answers which devices exist: the device channel
// checks every session against it and records each device's connection
// status there. Two directories exist: the built-in devices table of the
// broker's database (Builtin) and a WordPress site's wp_usermeta
// (WordPress), where the original device server found its users.
//
// The package knows nothing of Caddy.
package directory

import (
	"context"
	"errors"
)

// ErrNotFound means there is no such user or device.
var ErrNotFound = errors.New("device not found")

// Device is a known device.
type Device struct {
	UserID   string
	DeviceID string
	// Name is the device's display name, returned to it at auth.
	Name string
}

// Directory finds devices and records whether they are connected.
type Directory interface {
	// Lookup returns the device, or ErrNotFound.
	Lookup(ctx context.Context, userID, deviceID string) (*Device, error)
	// SetStatus records that the device connected (on) or disconnected,
	// or returns ErrNotFound.
	SetStatus(ctx context.Context, userID, deviceID string, on bool) error
}
