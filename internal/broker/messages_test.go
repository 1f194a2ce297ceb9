package broker_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
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

// TestRepeatedRegistrationComparesTheWholePayload: the same message_id
// with the same payload (metadata in any key order) answers the original
// receipt; a change of any part of the fingerprint — sender number, body,
// metadata, or the client registering — is a Conflict that stores nothing.
func TestRepeatedRegistrationComparesTheWholePayload(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		msgs, store := newMessages(t, db)
		ctx := context.Background()
		const id = "0b6f8a9e-5c1d-4e8f-9a7b-2c3d4e5f6a7b"
		original := `{"message_id":"` + id + `","sender_number":"+4915200000000","message_body":"hello","metadata":{"a":1,"b":"x"}}`
		first, err := msgs.Register(ctx, "proxy-1", decodeRegister(t, original))
		if err != nil || !first.Created || first.Status != storage.MessageQueued {
			t.Fatalf("first registration = %+v, %v", first, err)
		}
		same, err := msgs.Register(ctx, "proxy-1", decodeRegister(t, `{"metadata":{"b":"x","a":1},"message_body":"hello","sender_number":"+4915200000000","message_id":"`+id+`"}`))
		if err != nil || same.Created || same.MessageID != id || !same.QueuedAt.Equal(first.QueuedAt) || same.Status != storage.MessageQueued {
			t.Fatalf("same payload = %+v, %v; want the original receipt %+v", same, err, first)
		}
		differing := []struct{ name, client, body string }{
			{"sender number", "proxy-1", `{"message_id":"` + id + `","sender_number":"+4915200000001","message_body":"hello","metadata":{"a":1,"b":"x"}}`},
			{"body", "proxy-1", `{"message_id":"` + id + `","sender_number":"+4915200000000","message_body":"hello!","metadata":{"a":1,"b":"x"}}`},
			{"metadata value", "proxy-1", `{"message_id":"` + id + `","sender_number":"+4915200000000","message_body":"hello","metadata":{"a":2,"b":"x"}}`},
			{"metadata absent", "proxy-1", `{"message_id":"` + id + `","sender_number":"+4915200000000","message_body":"hello"}`},
			{"client", "proxy-2", original},
		}
		for _, d := range differing {
			_, err := msgs.Register(ctx, d.client, decodeRegister(t, d.body))
			wantKind(t, err, apperr.Conflict, "message_id_conflict")
		}
		stored, err := store.Messages.GetByMessageID(ctx, id)
		if err != nil || stored.ClientID != "proxy-1" || compact(t, stored.Metadata) != `{"a":1,"b":"x"}` {
			t.Fatalf("stored = %+v, %v: a conflicting registration changed the row", stored, err)
		}
	})
}

// TestRegisterStoresTheMessageProtected: the body encrypted under the
// message id, the number hashed and masked, the state queued.
func TestRegisterStoresTheMessageProtected(t *testing.T) {
	db := storagetest.OpenSQLite(t)
	msgs, store := newMessages(t, db)
	ctx := context.Background()
	receipt, err := msgs.Register(ctx, "proxy-1", decodeRegister(t, `{"sender_number":"+4915200000000","message_body":"secret text"}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := uuid.Parse(receipt.MessageID); err != nil || !receipt.Created || receipt.QueuedAt.IsZero() {
		t.Fatalf("receipt = %+v", receipt)
	}
	row, err := store.Messages.GetByMessageID(ctx, receipt.MessageID)
	if err != nil {
		t.Fatal(err)
	}
	if row.Status != storage.MessageQueued || row.ClientID != "proxy-1" || row.SenderNumberMasked != "+4915****0000" ||
		row.SenderNumberHash != msgs.Hasher().Hash("+4915200000000") || row.EncryptionKeyID != "k1" || row.Metadata != nil {
		t.Fatalf("stored row = %+v", row)
	}
	body, err := msgs.Keys().Decrypt(row.BodyEncrypted, []byte(receipt.MessageID))
	if err != nil || string(body) != "secret text" {
		t.Fatalf("body decrypts to %q, %v", body, err)
	}
}

// TestRegisterWithoutKeysIsUnavailable: while the keyring or the hash key
// is not loaded, a registration is a 503 that stores nothing.
func TestRegisterWithoutKeysIsUnavailable(t *testing.T) {
	db := storagetest.OpenSQLite(t)
	loaded, store := newMessages(t, db)
	req := decodeRegister(t, `{"sender_number":"+4915200000000","message_body":"x"}`)
	noKeyring := *loaded
	noKeyring.Keys = func() *keyring.Keyring { return nil }
	noHasher := *loaded
	noHasher.Hasher = func() *phone.Hasher { return nil }
	for name, msgs := range map[string]*broker.Messages{"keyring": &noKeyring, "hash key": &noHasher} {
		_, err := msgs.Register(context.Background(), "proxy-1", req)
		if e, ok := apperr.As(err); !ok || e.Kind != apperr.Unavailable || e.Code != "keys_unavailable" {
			t.Errorf("without the %s: %v, want Unavailable keys_unavailable", name, err)
		}
	}
	if n, err := store.Messages.Total(context.Background()); err != nil || n != 0 {
		t.Fatalf("%d messages stored, %v", n, err)
	}
}

// register stores a message and moves it through path, failing the test
// on any refusal; it returns the message id.
func register(t *testing.T, msgs *broker.Messages, path ...string) string {
	t.Helper()
	ctx := context.Background()
	r, err := msgs.Register(ctx, "proxy-1", decodeRegister(t, `{"sender_number":"+4915200000000","message_body":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, status := range path {
		if _, err := msgs.UpdateStatus(ctx, r.MessageID, broker.StatusRequest{Status: status, Error: "on the way to " + status}); err != nil {
			t.Fatalf("→ %s: %v", status, err)
		}
	}
	return r.MessageID
}

// TestUpdateStatusFollowsTheStateMachine drives every requested status
// from every state on a real database: legal moves change the row (one
// attempt per retrying, error kept on retrying and failed, timestamps on
// delivered and failed), a repeated state changes nothing, and everything
// else is an illegal_transition Conflict that leaves the row alone.
func TestUpdateStatusFollowsTheStateMachine(t *testing.T) {
	paths := map[string][]string{
		storage.MessageQueued:     nil,
		storage.MessageProcessing: {storage.MessageProcessing},
		storage.MessageRetrying:   {storage.MessageProcessing, storage.MessageRetrying},
		storage.MessageDelivered:  {storage.MessageDelivered},
		storage.MessageFailed:     {storage.MessageProcessing, storage.MessageFailed},
	}
	legal := map[[2]string]bool{
		{"queued", "processing"}: true, {"queued", "delivered"}: true,
		{"processing", "retrying"}: true, {"processing", "delivered"}: true, {"processing", "failed"}: true,
		{"retrying", "processing"}: true, {"retrying", "retrying"}: true, {"retrying", "delivered"}: true, {"retrying", "failed"}: true,
	}
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		msgs, store := newMessages(t, db)
		ctx := context.Background()
		for from, path := range paths {
			for _, to := range []string{storage.MessageProcessing, storage.MessageRetrying, storage.MessageDelivered, storage.MessageFailed} {
				id := register(t, msgs, path...)
				before, _ := store.Messages.GetByMessageID(ctx, id)
				state, err := msgs.UpdateStatus(ctx, id, broker.StatusRequest{Status: to, Error: "new error"})
				after, _ := store.Messages.GetByMessageID(ctx, id)
				switch {
				case legal[[2]string{from, to}]:
					checkMove(t, from, to, state, err, before, after)
				case from == to:
					if err != nil || state.Changed || state.Status != from || !sameRow(before, after) {
						t.Errorf("%s → %s again = %+v, %v; want the unchanged state", from, to, state, err)
					}
				default:
					if e, ok := apperr.As(err); !ok || e.Kind != apperr.Conflict || e.Code != "illegal_transition" || !sameRow(before, after) {
						t.Errorf("%s → %s = %v, want Conflict illegal_transition and no change", from, to, err)
					}
				}
			}
		}
	})
}

func checkMove(t *testing.T, from, to string, state broker.State, err error, before, after *storage.Message) {
	t.Helper()
	if err != nil || !state.Changed || state.Status != to || after.Status != to || state.MessageID != before.MessageID || state.ClientID != "proxy-1" {
		t.Errorf("%s → %s = %+v, %v", from, to, state, err)
		return
	}
	wantAttempts := before.Attempts
	if to == storage.MessageRetrying {
		wantAttempts++
	}
	wantError := before.LastError
	if to == storage.MessageRetrying || to == storage.MessageFailed {
		e := "new error"
		wantError = &e
	}
	if after.Attempts != wantAttempts || state.Attempts != wantAttempts || !equalPtr(after.LastError, wantError) || !equalPtr(state.LastError, wantError) {
		t.Errorf("%s → %s: attempts %d, last_error %v; want %d, %v", from, to, after.Attempts, deref(after.LastError), wantAttempts, deref(wantError))
	}
	if (to == storage.MessageDelivered) != (after.DeliveredAt != nil) || (to == storage.MessageFailed) != (after.FailedAt != nil) {
		t.Errorf("%s → %s: delivered_at %v, failed_at %v", from, to, after.DeliveredAt, after.FailedAt)
	}
	if !after.UpdatedAt.After(before.UpdatedAt) && !after.UpdatedAt.Equal(before.UpdatedAt) {
		t.Errorf("%s → %s: updated_at went back", from, to)
	}
}

func sameRow(a, b *storage.Message) bool {
	return a.Status == b.Status && a.Attempts == b.Attempts && equalPtr(a.LastError, b.LastError) && a.UpdatedAt.Equal(b.UpdatedAt)
}

func equalPtr(a, b *string) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// TestRepeatedFinalStatusRecordsNothing: a second failed with another
// error answers the current state with Changed false and keeps the first
// error, so the worker can see its report was not recorded.
func TestRepeatedFinalStatusRecordsNothing(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		msgs, _ := newMessages(t, db)
		id := register(t, msgs, storage.MessageProcessing, storage.MessageFailed)
		state, err := msgs.UpdateStatus(context.Background(), id, broker.StatusRequest{Status: storage.MessageFailed, Error: "another cause"})
		if err != nil || state.Changed || state.Status != storage.MessageFailed || deref(state.LastError) != "on the way to failed" || state.FailedAt == nil {
			t.Fatalf("repeated failed = %+v, %v", state, err)
		}
		delivered := register(t, msgs, storage.MessageDelivered)
		state, err = msgs.Deliver(context.Background(), delivered)
		if err != nil || state.Changed || state.Status != storage.MessageDelivered || state.DeliveredAt == nil {
			t.Fatalf("repeated delivery = %+v, %v", state, err)
		}
	})
}

func TestUpdateStatusOfAnUnknownMessageIsNotFound(t *testing.T) {
	msgs, _ := newMessages(t, storagetest.OpenSQLite(t))
	_, err := msgs.UpdateStatus(context.Background(), uuid.NewString(), broker.StatusRequest{Status: storage.MessageProcessing})
	wantKind(t, err, apperr.NotFound, "message_not_found")
	_, err = msgs.Deliver(context.Background(), uuid.NewString())
	wantKind(t, err, apperr.NotFound, "message_not_found")
}

// racingWorker is a query hook playing another worker that wins every
// race: just after each read of the message it moves the message between
// processing and retrying, so the compare-and-set that follows finds
// another state than the one read. (It acts after the read rather than
// just before the UPDATE: the UPDATE runs in a transaction, and on SQLite
// no other writer can get in there.)
type racingWorker struct {
	db        *bun.DB
	messageID string
	moves     atomic.Int32
}

type hookBypass struct{}

func (w *racingWorker) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context {
	return ctx
}

func (w *racingWorker) AfterQuery(ctx context.Context, event *bun.QueryEvent) {
	if ctx.Value(hookBypass{}) != nil || event.Operation() != "SELECT" || !strings.Contains(event.Query, "FROM `messages`") && !strings.Contains(event.Query, `FROM "messages"`) {
		return
	}
	_, err := w.db.NewRaw("UPDATE messages SET status = CASE status WHEN 'processing' THEN 'retrying' ELSE 'processing' END WHERE message_id = ?", w.messageID).
		Exec(context.WithValue(ctx, hookBypass{}, true))
	if err == nil {
		w.moves.Add(1)
	}
}

// TestUpdateStatusGivesUpAfterLosingEveryRace: a worker that loses the
// compare-and-set to others again and again gets a concurrent_update
// Conflict after a bounded number of attempts, and overwrites nothing.
func TestUpdateStatusGivesUpAfterLosingEveryRace(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		msgs, store := newMessages(t, db)
		id := register(t, msgs, storage.MessageProcessing)
		racer := &racingWorker{db: db, messageID: id}
		//lint:ignore SA1019 the hook must see the queries of services already built on db; WithQueryHook would return another handle
		db.AddQueryHook(racer)
		_, err := msgs.UpdateStatus(context.Background(), id, broker.StatusRequest{Status: storage.MessageRetrying, Error: "mine"})
		wantKind(t, err, apperr.Conflict, "concurrent_update")
		if n := racer.moves.Load(); n != 8 {
			t.Errorf("the update was tried %d times, want 8", n)
		}
		row, err := store.Messages.GetByMessageID(context.Background(), id)
		if err != nil || row.Attempts != 0 || row.LastError != nil {
			t.Fatalf("row = %+v, %v: a lost race overwrote it", row, err)
		}
	})
}
