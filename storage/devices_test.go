package storage_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/uptrace/bun"

	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

func TestDeviceDirectory(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		repo := storage.New(db).Devices

		phone := &storage.Device{UserID: "42", DeviceID: "phone", Name: "Phone"}
		mustNoErr(t, repo.Add(ctx, phone), "Add")
		if phone.ID == 0 || phone.Status != storage.DeviceOff {
			t.Fatalf("Add left id %d, status %q; want an id and %q", phone.ID, phone.Status, storage.DeviceOff)
		}
		got, err := repo.Get(ctx, "42", "phone")
		mustNoErr(t, err, "Get")
		if !reflect.DeepEqual(got, phone) {
			t.Errorf("Get =\n%+v\nwant\n%+v", got, phone)
		}

		upserted := &storage.Device{UserID: "42", DeviceID: "phone", Name: "Renamed", Status: storage.DeviceOn}
		mustNoErr(t, repo.Upsert(ctx, upserted), "Upsert existing")
		if upserted.ID != phone.ID || !upserted.CreatedAt.Equal(phone.CreatedAt) || upserted.Name != "Renamed" || upserted.Status != storage.DeviceOn {
			t.Errorf("Upsert of an existing device = %+v, want id %d and created_at kept, name and status updated", upserted, phone.ID)
		}
		tablet := &storage.Device{UserID: "42", DeviceID: "tablet", Name: "Tablet", Status: storage.DeviceOn}
		mustNoErr(t, repo.Upsert(ctx, tablet), "Upsert new")
		other := &storage.Device{UserID: "7", DeviceID: "phone", Name: "Other"}
		mustNoErr(t, repo.Add(ctx, other), "Add")

		for _, tt := range []struct {
			userID string
			want   []string
		}{
			{"42", []string{"42/phone", "42/tablet"}},
			{"7", []string{"7/phone"}},
			{"", []string{"42/phone", "42/tablet", "7/phone"}},
			{"nobody", nil},
		} {
			list, err := repo.List(ctx, tt.userID)
			mustNoErr(t, err, "List")
			var keys []string
			for _, d := range list {
				keys = append(keys, d.UserID+"/"+d.DeviceID)
			}
			if !reflect.DeepEqual(keys, tt.want) {
				t.Errorf("List(%q) = %v, want %v", tt.userID, keys, tt.want)
			}
		}

		mustNoErr(t, repo.SetStatus(ctx, "42", "tablet", storage.DeviceOff), "SetStatus")
		mustNoErr(t, repo.SetStatus(ctx, "42", "tablet", storage.DeviceOff), "SetStatus to the same status")
		got, err = repo.Get(ctx, "42", "tablet")
		mustNoErr(t, err, "Get")
		if got.Status != storage.DeviceOff {
			t.Errorf("status after SetStatus = %q", got.Status)
		}
		mustNoErr(t, repo.Remove(ctx, "42", "tablet"), "Remove")

		for _, tt := range []struct {
			name string
			err  error
			want error
		}{
			{"adding an existing pair conflicts", repo.Add(ctx, &storage.Device{UserID: "42", DeviceID: "phone"}), storage.ErrConflict},
			{"getting a removed device is not found", errOf(repo.Get(ctx, "42", "tablet")), storage.ErrNotFound},
			{"removing a removed device is not found", repo.Remove(ctx, "42", "tablet"), storage.ErrNotFound},
			{"setting the status of an unknown device is not found", repo.SetStatus(ctx, "42", "tablet", storage.DeviceOn), storage.ErrNotFound},
		} {
			if !errors.Is(tt.err, tt.want) {
				t.Errorf("%s: got %v, want %v", tt.name, tt.err, tt.want)
			}
		}
	})
}
