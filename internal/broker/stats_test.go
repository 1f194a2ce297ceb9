package broker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

func TestStatsCountMessagesClientsAndUsers(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		store := storage.New(db)
		ctx := context.Background()
		now := time.Now().UTC()
		ages := []struct {
			status string
			age    time.Duration
		}{
			{storage.MessageQueued, time.Hour},
			{storage.MessageQueued, 2 * 24 * time.Hour},
			{storage.MessageProcessing, time.Minute},
			{storage.MessageRetrying, time.Minute},
			{storage.MessageDelivered, 3 * time.Hour},
			{storage.MessageDelivered, 6 * 24 * time.Hour},
			{storage.MessageDelivered, 30 * 24 * time.Hour},
			{storage.MessageFailed, 8 * 24 * time.Hour},
		}
		for i, a := range ages {
			at := now.Add(-a.age)
			if err := store.Messages.Insert(ctx, &storage.Message{
				MessageID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), ClientID: "proxy-1",
				SenderNumberHash: fmt.Sprintf("%064d", i), SenderNumberMasked: "+49****00",
				BodyEncrypted: []byte{1}, EncryptionKeyID: "k", PayloadHash: fmt.Sprintf("%064d", i),
				Status: a.status, QueuedAt: at, CreatedAt: at, UpdatedAt: at,
			}); err != nil {
				t.Fatal(err)
			}
		}
		certs := []struct {
			status   string
			notAfter time.Time
		}{
			{storage.ClientActive, now.Add(24 * time.Hour)},
			{storage.ClientActive, now.Add(48 * time.Hour)},
			{storage.ClientActive, now.Add(-time.Hour)},
			{storage.ClientRevoked, now.Add(24 * time.Hour)},
		}
		for i, c := range certs {
			if err := store.Clients.Insert(ctx, &storage.Client{
				ClientID: "proxy-1", SerialNumber: fmt.Sprintf("%x", i+10), FingerprintSHA256: fmt.Sprintf("%064d", i),
				Role: storage.ClientRoleProxy, Status: c.status, Subject: "CN=proxy-1", NotAfter: c.notAfter, CreatedBy: "test",
			}); err != nil {
				t.Fatal(err)
			}
		}
		for i, role := range []string{storage.RoleAdmin, storage.RoleUser, storage.RoleUser} {
			if err := store.Users.Create(ctx, &storage.User{Email: fmt.Sprintf("u%d@example.com", i), PasswordHash: "x", Role: role, IsActive: true}); err != nil {
				t.Fatal(err)
			}
		}

		s, err := broker.CollectStats(ctx, store, now)
		if err != nil {
			t.Fatal(err)
		}
		want := broker.Stats{
			Messages:    broker.MessageStats{Total: 8, Queued: 2, Processing: 1, Retrying: 1, Delivered: 3, Failed: 1, Last24h: 4, Last7d: 6},
			Clients:     broker.ClientStats{Total: 4, Active: 2, Revoked: 1, Expired: 1},
			Users:       broker.UserStats{Total: 3, Admins: 1},
			GeneratedAt: now,
		}
		if s != want {
			t.Fatalf("stats = %+v\nwant    %+v", s, want)
		}
	})
}
