package sessions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is the Store in Redis, shared by every node. A session is a hash
// under prefix+"session:"+key holding the session as JSON and the sealed
// private key; its failure count is a field of the same hash, so one
// EXPIRE covers both.
type Redis struct {
	client redis.UniversalClient
	prefix string
	ttl    time.Duration
	sealer func() Sealer
}

// NewRedis returns a session store in client's database. keys returns the
// sealer of private keys in use now (the keyring can be reloaded).
func NewRedis(client redis.UniversalClient, prefix string, ttl time.Duration, keys func() Sealer) *Redis {
	return &Redis{client: client, prefix: prefix, ttl: ttl, sealer: keys}
}

func (r *Redis) key(key string) string { return r.prefix + "session:" + key }

// createScript stores a session unless one exists, atomically; an
// existing session's idle TTL restarts, as with Get.
var createScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 0
end
redis.call('HSET', KEYS[1], 'session', ARGV[1], 'key', ARGV[2], 'failures', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1`)

// Create implements Store.
func (r *Redis) Create(ctx context.Context, key string, s *Session) error {
	sealer := r.sealer()
	if sealer == nil {
		return errors.New("no keyring to seal the session key with")
	}
	meta, err := json.Marshal(s)
	if err != nil {
		return err
	}
	sealed, err := sealer.Encrypt(s.PrivateKey, []byte(key))
	if err != nil {
		return fmt.Errorf("sealing the session key: %w", err)
	}
	created, err := createScript.Run(ctx, r.client, []string{r.key(key)}, meta, sealed, r.ttl.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("storing the session: %w", err)
	}
	if created == 0 {
		return ErrExists
	}
	return nil
}

// Get implements Store.
func (r *Redis) Get(ctx context.Context, key string) (*Session, error) {
	k := r.key(key)
	var get *redis.SliceCmd
	_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		get = p.HMGet(ctx, k, "session", "key")
		p.PExpire(ctx, k, r.ttl)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the session: %w", err)
	}
	vals := get.Val()
	meta, ok1 := vals[0].(string)
	sealed, ok2 := vals[1].(string)
	if !ok1 || !ok2 {
		return nil, ErrNotFound
	}
	s := new(Session)
	if err := json.Unmarshal([]byte(meta), s); err != nil {
		return nil, fmt.Errorf("reading the session: %w", err)
	}
	sealer := r.sealer()
	if sealer == nil {
		return nil, errors.New("no keyring to open the session key with")
	}
	if s.PrivateKey, err = sealer.Decrypt([]byte(sealed), []byte(key)); err != nil {
		return nil, fmt.Errorf("opening the session key: %w", err)
	}
	return s, nil
}

// Delete implements Store.
func (r *Redis) Delete(ctx context.Context, key string) error {
	n, err := r.client.Del(ctx, r.key(key)).Result()
	if err != nil {
		return fmt.Errorf("deleting the session: %w", err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// failScript counts a failure in an existing session and deletes the
// session at the limit.
var failScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local n = redis.call('HINCRBY', KEYS[1], 'failures', 1)
if n >= tonumber(ARGV[1]) then
	redis.call('DEL', KEYS[1])
	return 1
end
return 0`)

// Fail implements Store.
func (r *Redis) Fail(ctx context.Context, key string, limit int) (bool, error) {
	closed, err := failScript.Run(ctx, r.client, []string{r.key(key)}, strconv.Itoa(limit)).Int()
	if err != nil {
		return false, fmt.Errorf("counting a failed decryption: %w", err)
	}
	return closed == 1, nil
}

// Count implements Store by scanning the store's keys; it is for metrics,
// read at scrape intervals.
func (r *Redis) Count(ctx context.Context) (int64, error) {
	var n int64
	iter := r.client.Scan(ctx, 0, r.prefix+"session:*", 1000).Iterator()
	for iter.Next(ctx) {
		n++
	}
	return n, iter.Err()
}

// RedisMessages is the MessageStore in Redis: each message as a JSON Record
// under prefix + its id (the original server's layout, prefix empty), with
// an optional TTL, and — when stream is set — appended to that stream
// (XADD, field "record") in the same script, for workers to consume with
// XREADGROUP. The script touches two keys, so on Redis Cluster the prefix
// and stream need one hash tag.
type RedisMessages struct {
	client redis.UniversalClient
	prefix string
	ttl    time.Duration
	stream string
}

// NewRedisMessages returns a message store in client's database.
func NewRedisMessages(client redis.UniversalClient, prefix string, ttl time.Duration, stream string) *RedisMessages {
	return &RedisMessages{client: client, prefix: prefix, ttl: ttl, stream: stream}
}

var putScript = redis.NewScript(`
local ok
if tonumber(ARGV[2]) > 0 then
	ok = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
else
	ok = redis.call('SET', KEYS[1], ARGV[1], 'NX')
end
if not ok then return 0 end
if ARGV[3] == '1' then redis.call('XADD', KEYS[2], '*', 'id', ARGV[4], 'record', ARGV[1]) end
return 1`)

// Put implements MessageStore.
func (m *RedisMessages) Put(ctx context.Context, r *Record) (bool, error) {
	data, err := json.Marshal(r)
	if err != nil {
		return false, err
	}
	stream, useStream := m.stream, "1"
	if stream == "" {
		stream, useStream = m.prefix+r.ID, "0"
	}
	stored, err := putScript.Run(ctx, m.client, []string{m.prefix + r.ID, stream},
		data, m.ttl.Milliseconds(), useStream, r.ID).Int()
	if err != nil {
		return false, fmt.Errorf("storing the message: %w", err)
	}
	return stored == 0, nil
}
