package storage

import (
	"context"

	"github.com/uptrace/bun"
)

// DeviceRepo reads and writes the devices table, the built-in device
// directory. A device is identified by the pair (user id, device id).
type DeviceRepo struct {
	db *bun.DB
}

// Add stores a new device and sets d.ID; an empty status becomes DeviceOff.
// An existing (user id, device id) pair yields ErrConflict.
func (r *DeviceRepo) Add(ctx context.Context, d *Device) error {
	prepareDevice(d)
	if _, err := execWrite(ctx, r.db.NewInsert().Model(d)); err != nil {
		return dbError(err, "adding device %s/%s", d.UserID, d.DeviceID)
	}
	return nil
}

// prepareDevice fills the defaults of a device about to be written.
func prepareDevice(d *Device) {
	t := now()
	if d.Status == "" {
		d.Status = DeviceOff
	}
	d.CreatedAt = orTime(d.CreatedAt, t)
	d.UpdatedAt = t
}

// Get returns the device or ErrNotFound.
func (r *DeviceRepo) Get(ctx context.Context, userID, deviceID string) (*Device, error) {
	d := new(Device)
	err := r.db.NewSelect().Model(d).
		Where("user_id = ?", userID).
		Where("device_id = ?", deviceID).
		Scan(ctx)
	if err != nil {
		return nil, dbError(err, "getting device %s/%s", userID, deviceID)
	}
	return d, nil
}

// List returns the devices of userID, or of every user when userID is
// empty, ordered by user id and device id.
func (r *DeviceRepo) List(ctx context.Context, userID string) ([]Device, error) {
	var devices []Device
	q := r.db.NewSelect().Model(&devices)
	if userID != "" {
		q = q.Where("user_id = ?", userID)
	}
	if err := q.OrderExpr("user_id ASC, device_id ASC").Scan(ctx); err != nil {
		return nil, dbError(err, "listing devices")
	}
	return devices, nil
}

// Remove deletes the device; it returns ErrNotFound if there is none.
func (r *DeviceRepo) Remove(ctx context.Context, userID, deviceID string) error {
	q := r.db.NewDelete().Model((*Device)(nil)).
		Where("user_id = ?", userID).
		Where("device_id = ?", deviceID)
	res, err := execWrite(ctx, q)
	if err != nil {
		return dbError(err, "removing device %s/%s", userID, deviceID)
	}
	return requireRow(res, "removing device %s/%s", userID, deviceID)
}

// SetStatus sets the device's status (DeviceOn or DeviceOff); it returns
// ErrNotFound if there is no such device.
func (r *DeviceRepo) SetStatus(ctx context.Context, userID, deviceID, status string) error {
	q := r.db.NewUpdate().Model((*Device)(nil)).
		Set("status = ?", status).
		Set("updated_at = ?", now()).
		Where("user_id = ?", userID).
		Where("device_id = ?", deviceID)
	res, err := execWrite(ctx, q)
	if err != nil {
		return dbError(err, "setting status of device %s/%s", userID, deviceID)
	}
	return requireRow(res, "setting status of device %s/%s", userID, deviceID)
}
