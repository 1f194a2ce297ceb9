package sessions

import (
	"context"
	"testing"
	"time"
)

// TestRedisRefusesWithoutAKeyring: with no keyring loaded a session can
// neither be stored nor read, rather than holding its key unsealed.
func TestRedisRefusesWithoutAKeyring(t *testing.T) {
	client, prefix := redisClient(t)
	kr := testKeyring(t)
	var sealer Sealer
	s := NewRedis(client, prefix, time.Minute, func() Sealer { return sealer })
	ctx := context.Background()
	if err := s.Create(ctx, "k", session("u", "d")); err == nil {
		t.Fatal("a session was stored without a keyring")
	}
	if n, _ := s.Count(ctx); n != 0 {
		t.Fatalf("%d sessions stored without a keyring", n)
	}
	sealer = kr
	if err := s.Create(ctx, "k", session("u", "d")); err != nil {
		t.Fatal(err)
	}
	sealer = nil
	if got, err := s.Get(ctx, "k"); err == nil {
		t.Fatalf("a session was read without a keyring: %+v", got)
	}
}

// TestRedisMessagesWithoutAStream: with no stream configured a record is
// stored under its id, once, and no stream is written.
func TestRedisMessagesWithoutAStream(t *testing.T) {
	client, prefix := redisClient(t)
	m := NewRedisMessages(client, prefix, 0, "")
	ctx := context.Background()
	for i, want := range []bool{false, true} {
		dup, err := m.Put(ctx, record("x"))
		if err != nil || dup != want {
			t.Fatalf("put %d: duplicate %v, %v", i, dup, err)
		}
	}
	id := prefix + record("x").ID
	if typ := client.Type(ctx, id).Val(); typ != "string" {
		t.Fatalf("%s is a %s, want the record as a string", id, typ)
	}
	if ttl := client.TTL(ctx, id).Val(); ttl != -1 {
		t.Errorf("ttl %v, want none with a TTL of 0", ttl)
	}
}
