package storage_test

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

func newClient(i int, clientID, role string) *storage.Client {
	return &storage.Client{
		ClientID:          clientID,
		SerialNumber:      fmt.Sprintf("0A%06X", i),
		FingerprintSHA256: fmt.Sprintf("%064X", i),
		Role:              role,
		Subject:           "CN=" + clientID,
		IssuedAt:          baseTime,
		NotAfter:          baseTime.AddDate(1, 0, 0),
		CreatedBy:         "admin@example.com",
	}
}

func TestClientInsertGetAndList(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		repo := storage.New(db).Clients
		proxy := newClient(1, "proxy-a", storage.ClientRoleProxy)
		worker := newClient(2, "worker-a", storage.ClientRoleWorker)
		renewed := newClient(3, "proxy-a", storage.ClientRoleProxy)
		for _, c := range []*storage.Client{proxy, worker, renewed} {
			mustNoErr(t, repo.Insert(ctx, c), "Insert")
		}
		if proxy.SerialNumber != "0a000001" || proxy.Status != storage.ClientActive {
			t.Errorf("Insert stored serial %q, status %q; want lowercase hex and active", proxy.SerialNumber, proxy.Status)
		}

		got, err := repo.GetBySerial(ctx, "0A000001")
		mustNoErr(t, err, "GetBySerial")
		if !reflect.DeepEqual(got, proxy) {
			t.Errorf("GetBySerial =\n%+v\nwant\n%+v", got, proxy)
		}
		mustNoErr(t, repo.Revoke(ctx, worker.SerialNumber, "key compromise", baseTime), "Revoke")

		tests := []struct {
			status, clientID string
			want             []int64
		}{
			{"", "", []int64{renewed.ID, worker.ID, proxy.ID}},
			{storage.ClientActive, "", []int64{renewed.ID, proxy.ID}},
			{storage.ClientRevoked, "", []int64{worker.ID}},
			{"", "proxy-a", []int64{renewed.ID, proxy.ID}},
			{storage.ClientRevoked, "proxy-a", nil},
		}
		for _, tt := range tests {
			list, err := repo.ListFilter(ctx, tt.status, tt.clientID)
			mustNoErr(t, err, "ListFilter")
			var ids []int64
			for _, c := range list {
				ids = append(ids, c.ID)
			}
			if !slices.Equal(ids, tt.want) {
				t.Errorf("ListFilter(%q, %q) = %v, want %v", tt.status, tt.clientID, ids, tt.want)
			}
		}
	})
}

func TestClientRevocation(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		repo := storage.New(db).Clients
		var all []*storage.Client
		for i := range 4 {
			c := newClient(i, fmt.Sprintf("proxy-%d", i), storage.ClientRoleProxy)
			c.CreatedAt, c.UpdatedAt = baseTime, baseTime
			mustNoErr(t, repo.Insert(ctx, c), "Insert")
			all = append(all, c)
		}

		revokedAt := baseTime.Add(time.Hour)
		mustNoErr(t, repo.Revoke(ctx, "0A000002", "superseded", revokedAt), "Revoke")
		got, err := repo.GetBySerial(ctx, all[2].SerialNumber)
		mustNoErr(t, err, "GetBySerial")
		if got.Status != storage.ClientRevoked || got.RevokedAt == nil || !got.RevokedAt.Equal(revokedAt) ||
			got.RevocationReason == nil || *got.RevocationReason != "superseded" || !got.UpdatedAt.Equal(revokedAt) {
			t.Errorf("after Revoke: %+v", got)
		}

		for _, tt := range []struct {
			name   string
			serial string
			want   error
		}{
			{"revoking twice conflicts", all[2].SerialNumber, storage.ErrConflict},
			{"revoking an unknown serial is not found", "ffff", storage.ErrNotFound},
		} {
			if err := repo.Revoke(ctx, tt.serial, "again", revokedAt); !errors.Is(err, tt.want) {
				t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
			}
		}

		revoked, err := repo.RevokedSerials(ctx)
		mustNoErr(t, err, "RevokedSerials")
		active, err := repo.ActiveSerials(ctx)
		mustNoErr(t, err, "ActiveSerials")
		if !slices.Equal(revoked, []string{"0a000002"}) || !slices.Equal(active, []string{"0a000000", "0a000001", "0a000003"}) {
			t.Errorf("revoked %v, active %v", revoked, active)
		}

		changed, err := repo.ChangedSince(ctx, baseTime.Add(time.Minute))
		mustNoErr(t, err, "ChangedSince")
		if len(changed) != 1 || changed[0].ID != all[2].ID {
			t.Errorf("ChangedSince after the inserts = %+v, want only the revoked certificate", changed)
		}
		changed, err = repo.ChangedSince(ctx, baseTime)
		mustNoErr(t, err, "ChangedSince")
		if len(changed) != 4 || changed[3].ID != all[2].ID {
			t.Errorf("ChangedSince from the start returned %d rows, last %+v; want 4 ending with the revocation", len(changed), changed[len(changed)-1])
		}

		counts, err := repo.Counts(ctx)
		mustNoErr(t, err, "Counts")
		if want := (storage.ClientCounts{Total: 4, Active: 3, Revoked: 1}); counts != want {
			t.Errorf("Counts = %+v, want %+v", counts, want)
		}
	})
}

func TestClientDuplicatesConflict(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		repo := storage.New(db).Clients
		mustNoErr(t, repo.Insert(ctx, newClient(1, "proxy-a", storage.ClientRoleProxy)), "Insert")

		sameSerial := newClient(2, "proxy-b", storage.ClientRoleProxy)
		sameSerial.SerialNumber = "0a000001"
		sameFingerprint := newClient(3, "proxy-b", storage.ClientRoleProxy)
		sameFingerprint.FingerprintSHA256 = newClient(1, "", "").FingerprintSHA256

		for name, c := range map[string]*storage.Client{"serial": sameSerial, "fingerprint": sameFingerprint} {
			if err := repo.Insert(ctx, c); !errors.Is(err, storage.ErrConflict) {
				t.Errorf("duplicate %s: got %v, want ErrConflict", name, err)
			}
		}
		if _, err := repo.GetBySerial(ctx, "0b"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("GetBySerial(unknown): %v, want ErrNotFound", err)
		}
	})
}
