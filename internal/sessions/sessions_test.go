package sessions

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/msgbroker/caddy-msgbroker/internal/keyring"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

// redisClient returns a client of the test Redis and a key prefix of the
// test's own, whose keys are deleted when the test ends.
func redisClient(t *testing.T) (*redis.Client, string) {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: storagetest.Redis(t)})
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	prefix := "msgbroker_test_" + hex.EncodeToString(b) + ":"
	t.Cleanup(func() {
		defer client.Close()
		ctx := context.Background()
		iter := client.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			client.Del(ctx, iter.Val())
		}
	})
	return client, prefix
}

func testKeyring(t *testing.T) *keyring.Keyring {
	t.Helper()
	k, err := keyring.Generate("test")
	if err != nil {
		t.Fatal(err)
	}
	kr, err := keyring.NewKeyring(k)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// eachStore runs fn against the in-process store and the Redis store.
func eachStore(t *testing.T, ttl time.Duration, fn func(t *testing.T, s Store)) {
	t.Run("memory", func(t *testing.T) { fn(t, NewMemory(ttl)) })
	t.Run("redis", func(t *testing.T) {
		client, prefix := redisClient(t)
		kr := testKeyring(t)
		fn(t, NewRedis(client, prefix, ttl, func() Sealer { return kr }))
	})
}

func session(user, device string) *Session {
	return &Session{UserID: user, DeviceID: device, Mode: ModeRSA, PrivateKey: []byte("private " + user + device),
		CreatedAt: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)}
}

func TestStoreCreatesOnceAndDeletesOnce(t *testing.T) {
	eachStore(t, time.Minute, func(t *testing.T, s Store) {
		ctx := context.Background()
		if err := s.Create(ctx, "u1d1", session("u1", "d1")); err != nil {
			t.Fatal(err)
		}
		if err := s.Create(ctx, "u1d1", session("u1", "other")); err != ErrExists {
			t.Fatalf("second create: %v, want ErrExists", err)
		}
		got, err := s.Get(ctx, "u1d1")
		if err != nil || got.DeviceID != "d1" || !bytes.Equal(got.PrivateKey, []byte("private u1d1")) || got.Mode != ModeRSA || !got.CreatedAt.Equal(session("", "").CreatedAt) {
			t.Fatalf("get: %+v, %v", got, err)
		}
		if n, err := s.Count(ctx); err != nil || n != 1 {
			t.Errorf("count: %d, %v", n, err)
		}
		if err := s.Delete(ctx, "u1d1"); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, "u1d1"); err != ErrNotFound {
			t.Errorf("second delete: %v, want ErrNotFound", err)
		}
		if _, err := s.Get(ctx, "u1d1"); err != ErrNotFound {
			t.Errorf("get after delete: %v, want ErrNotFound", err)
		}
	})
}

func TestStoreClosesTheSessionAtTheFailureLimit(t *testing.T) {
	eachStore(t, time.Minute, func(t *testing.T, s Store) {
		ctx := context.Background()
		if err := s.Create(ctx, "k", session("u", "d")); err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 3; i++ {
			closed, err := s.Fail(ctx, "k", 3)
			if err != nil || closed != (i == 3) {
				t.Fatalf("failure %d: closed %v, %v", i, closed, err)
			}
		}
		if _, err := s.Get(ctx, "k"); err != ErrNotFound {
			t.Errorf("get after the limit: %v", err)
		}
		if closed, err := s.Fail(ctx, "k", 3); closed || err != nil {
			t.Errorf("failure without a session: %v, %v", closed, err)
		}
		// A new session starts counting from zero.
		if err := s.Create(ctx, "k", session("u", "d")); err != nil {
			t.Fatal(err)
		}
		if closed, _ := s.Fail(ctx, "k", 3); closed {
			t.Error("a new session inherited the old one's failures")
		}
	})
}

func TestStoreExpiresIdleSessionsAndKeepsBusyOnes(t *testing.T) {
	eachStore(t, 300*time.Millisecond, func(t *testing.T, s Store) {
		ctx := context.Background()
		// "restarted" is kept alive by starts refused as already open.
		for _, k := range []string{"busy", "idle", "restarted"} {
			if err := s.Create(ctx, k, session(k, "d")); err != nil {
				t.Fatal(err)
			}
		}
		for range 4 {
			time.Sleep(120 * time.Millisecond)
			if _, err := s.Get(ctx, "busy"); err != nil {
				t.Fatalf("busy session: %v", err)
			}
			if err := s.Create(ctx, "restarted", session("restarted", "other")); err != ErrExists {
				t.Fatalf("start of an open session: %v", err)
			}
		}
		if _, err := s.Get(ctx, "idle"); err != ErrNotFound {
			t.Errorf("idle session after 480ms of a 300ms TTL: %v", err)
		}
		if got, err := s.Get(ctx, "restarted"); err != nil || got.DeviceID != "d" {
			t.Errorf("session restarted by refused starts: %+v, %v", got, err)
		}
		if err := s.Create(ctx, "idle", session("idle", "d")); err != nil {
			t.Errorf("create over an expired session: %v", err)
		}
	})
}

// TestRedisHoldsNoPrivateKeyInTheClear reads every value the store wrote.
func TestRedisHoldsNoPrivateKeyInTheClear(t *testing.T) {
	client, prefix := redisClient(t)
	kr := testKeyring(t)
	s := NewRedis(client, prefix, time.Minute, func() Sealer { return kr })
	ctx := context.Background()
	sess := session("u", "d")
	if err := s.Create(ctx, "ud", sess); err != nil {
		t.Fatal(err)
	}
	dump := fmt.Sprint(client.HGetAll(ctx, prefix+"session:ud").Val())
	if bytes.Contains([]byte(dump), sess.PrivateKey) {
		t.Fatalf("private key in the clear: %s", dump)
	}
	// A sealed key copied to another session does not open there.
	sealed := client.HGet(ctx, prefix+"session:ud", "key").Val()
	if err := s.Create(ctx, "xy", session("x", "y")); err != nil {
		t.Fatal(err)
	}
	client.HSet(ctx, prefix+"session:xy", "key", sealed)
	if _, err := s.Get(ctx, "xy"); err == nil {
		t.Error("a key sealed for another session opened")
	}
}

func record(data string) *Record {
	return &Record{ID: fmt.Sprintf("%x", data), UserID: "u", DeviceID: "d", Minute: "1",
		ReceivedAt: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC), Data: data}
}

func TestMessagesAreStoredOnceAndHandedOnOnce(t *testing.T) {
	ctx := context.Background()
	t.Run("memory", func(t *testing.T) {
		m := NewMemoryMessages(0, 2)
		for i, tc := range []struct {
			data string
			dup  bool
		}{{"a", false}, {"a", true}, {"b", false}, {"c", false}, {"a", false}} {
			dup, err := m.Put(ctx, record(tc.data))
			if err != nil || dup != tc.dup {
				t.Errorf("put %d %q: duplicate %v, %v", i, tc.data, dup, err)
			}
		}
		if _, ok := m.Get(record("b").ID); ok {
			t.Error("the oldest message was not dropped at the limit")
		}
	})
	t.Run("redis", func(t *testing.T) {
		client, prefix := redisClient(t)
		stream := prefix + "stream"
		m := NewRedisMessages(client, prefix, time.Hour, stream)
		for i, dupWant := range []bool{false, true} {
			dup, err := m.Put(ctx, record("hello"))
			if err != nil || dup != dupWant {
				t.Fatalf("put %d: duplicate %v, %v", i, dup, err)
			}
		}
		stored := client.Get(ctx, prefix+record("hello").ID).Val()
		want := `{"id":"68656c6c6f","user_id":"u","device_id":"d","minute":"1","received_at":"2026-12-02T10:00:00Z","data":"hello"}`
		if stored != want {
			t.Errorf("stored record:\n got %s\nwant %s", stored, want)
		}
		if ttl := client.TTL(ctx, prefix+record("hello").ID).Val(); ttl <= 0 || ttl > time.Hour {
			t.Errorf("ttl %v", ttl)
		}
		entries := client.XRange(ctx, stream, "-", "+").Val()
		if len(entries) != 1 || entries[0].Values["record"] != want || entries[0].Values["id"] != "68656c6c6f" {
			t.Errorf("stream entries: %+v", entries)
		}
	})
}
