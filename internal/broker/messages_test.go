package broker_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/uptrace/bun"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/internal/keyring"
	"github.com/msgbroker/caddy-msgbroker/internal/phone"
	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

// newMessages returns the messages service over db with a fresh keyring
// and hash key.
func newMessages(t *testing.T, db *bun.DB) (*broker.Messages, *storage.Store) {
	t.Helper()
	key, err := keyring.Generate("k1")
	if err != nil {
		t.Fatal(err)
	}
	kr, err := keyring.NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	hasher, err := phone.NewHasher([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	store := storage.New(db)
	return &broker.Messages{Store: store, Keys: func() *keyring.Keyring { return kr }, Hasher: func() *phone.Hasher { return hasher }}, store
}

// decodeRegister builds a registration as the internal API does, from JSON.
func decodeRegister(t *testing.T, body string) broker.RegisterRequest {
	t.Helper()
	req, err := broker.DecodeRegister([]byte(body), 0)
	if err != nil {
		t.Fatalf("DecodeRegister(%s): %v", body, err)
	}
	return req
}

// nested returns metadata nesting objects and arrays, alternately, depth
// levels deep: both count towards the limit, as both do for MariaDB.
func nested(depth int) string {
	var open, closing strings.Builder
	for i := range depth {
		if i%2 == 0 {
			open.WriteString(`{"k":`)
			closing.WriteString("}")
		} else {
			open.WriteString("[")
			closing.WriteString("]")
		}
	}
	return open.String() + "1" + reverse(closing.String())
}

func reverse(s string) string {
	b := []byte(s)
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	return string(b)
}

// TestMetadataDepthLimitIsOneEveryDatabaseStores: metadata nested exactly
// MaxMetadataDepth levels is stored as sent on SQLite and MariaDB (whose
// JSON type refuses 32 levels), and one level more is refused before it
// reaches either.
func TestMetadataDepthLimitIsOneEveryDatabaseStores(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		msgs, store := newMessages(t, db)
		ctx := context.Background()
		meta := nested(broker.MaxMetadataDepth)
		req := decodeRegister(t, `{"sender_number":"+4915200000000","message_body":"deep","metadata":`+meta+`}`)
		receipt, err := msgs.Register(ctx, "proxy-1", req)
		if err != nil {
			t.Fatalf("metadata of %d levels: %v", broker.MaxMetadataDepth, err)
		}
		stored, err := store.Messages.GetByMessageID(ctx, receipt.MessageID)
		if err != nil {
			t.Fatal(err)
		}
		if got := compact(t, stored.Metadata); got != meta {
			t.Fatalf("stored metadata = %s, want %s", got, meta)
		}
		_, err = broker.DecodeRegister([]byte(`{"sender_number":"+4915200000000","message_body":"deep","metadata":`+nested(broker.MaxMetadataDepth+1)+`}`), 0)
		if e, ok := apperr.As(err); !ok || e.Kind != apperr.Invalid || e.Code != "invalid_metadata" {
			t.Fatalf("metadata of %d levels = %v, want Invalid invalid_metadata", broker.MaxMetadataDepth+1, err)
		}
	})
}

func compact(t *testing.T, raw []byte) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("stored metadata %s: %v", raw, err)
	}
	out, _ := json.Marshal(v)
	return string(out)
}
