// Package broker holds the message broker's domain services — registering
// messages, tracking their delivery state — over the storage, keyring and
// phone packages. It knows nothing of Caddy or HTTP: the internal API
// handler and the admin CLI both drive it.
package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/internal/keyring"
	"github.com/msgbroker/caddy-msgbroker/internal/phone"
	"github.com/msgbroker/caddy-msgbroker/internal/strictjson"
	"github.com/msgbroker/caddy-msgbroker/storage"
)

// DefaultMaxBodyChars is the default limit on a message body, in characters.
const DefaultMaxBodyChars = 4096

// Messages registers messages and moves them through their states.
type Messages struct {
	Store  *storage.Store
	Keys   func() *keyring.Keyring
	Hasher func() *phone.Hasher
	// MaxBodyChars limits message_body (default DefaultMaxBodyChars).
	MaxBodyChars int
	// Inserter stores new messages; a storage.MessageBatcher shares
	// commits between concurrent registrations. Default: Store.Messages.
	Inserter interface {
		Insert(ctx context.Context, m *storage.Message) error
	}
}

// RegisterRequest is the body of POST /internal/messages/register.
type RegisterRequest struct {
	MessageID    string          `json:"message_id"`
	SenderNumber string          `json:"sender_number"`
	MessageBody  string          `json:"message_body"`
	Metadata     json.RawMessage `json:"metadata"`
}

// Receipt is the answer to a registration.
type Receipt struct {
	MessageID string    `json:"message_id"`
	Status    string    `json:"status"`
	QueuedAt  time.Time `json:"queued_at"`
	// Created is false when the registration repeated an earlier one.
	Created bool `json:"-"`
}

// DecodeRegister parses and checks the JSON of a registration, with every
// failure an Invalid error naming the field.
func DecodeRegister(data []byte, maxBodyChars int) (RegisterRequest, error) {
	var req RegisterRequest
	if err := strictjson.Decode(data, &req); err != nil {
		return req, err
	}
	return req, req.validate(maxBodyChars)
}

func (r *RegisterRequest) validate(maxBodyChars int) error {
	if maxBodyChars <= 0 {
		maxBodyChars = DefaultMaxBodyChars
	}
	if r.MessageID != "" {
		id, err := uuid.Parse(r.MessageID)
		if err != nil || len(r.MessageID) != 36 {
			return apperr.New(apperr.Invalid, "invalid_message_id", "message_id must be a UUID such as 0b6f8a9e-5c1d-4e8f-9a7b-2c3d4e5f6a7b")
		}
		r.MessageID = id.String()
	}
	if r.SenderNumber == "" {
		return apperr.New(apperr.Invalid, "missing_sender_number", "sender_number is required")
	}
	number, err := phone.Normalize(r.SenderNumber)
	if err != nil {
		return apperr.Wrap(err, apperr.Invalid, "invalid_sender_number", "sender_number is not an E.164 number: %s",
			strings.TrimPrefix(err.Error(), phone.ErrInvalidNumber.Error()+": "))
	}
	r.SenderNumber = number
	if r.MessageBody == "" {
		return apperr.New(apperr.Invalid, "missing_message_body", "message_body is required")
	}
	if n := utf8.RuneCountInString(r.MessageBody); n > maxBodyChars {
		return apperr.New(apperr.Invalid, "message_body_too_long", "message_body has %d characters; the limit is %d", n, maxBodyChars)
	}
	meta, err := canonicalMetadata(r.Metadata)
	if err != nil {
		return err
	}
	r.Metadata = meta
	return nil
}

// MaxMetadataDepth is the deepest nesting of objects and arrays metadata
// may have. MariaDB's JSON type refuses 32 levels, and a request the
// database would refuse must be refused here, as a 400, not fail as a 500;
// 16 leaves room under MariaDB's limit and is far beyond what metadata
// needs.
const MaxMetadataDepth = 16

// canonicalMetadata checks that metadata is an object (or absent/null) and
// re-encodes it with sorted keys, so that a retried registration compares
// equal whatever the key order or spacing. Numbers keep their exact text
// (json.Number), so large integers are neither rounded nor confused.
func canonicalMetadata(raw json.RawMessage) (json.RawMessage, error) {
	trimmed := strings.TrimSpace(string(raw))
	if trimmed == "" || trimmed == "null" {
		return nil, nil
	}
	dec := json.NewDecoder(strings.NewReader(trimmed))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, apperr.New(apperr.Invalid, "invalid_metadata", "metadata must be a JSON object")
	}
	if depth(obj) > MaxMetadataDepth {
		return nil, apperr.New(apperr.Invalid, "invalid_metadata", "metadata may nest at most %d levels", MaxMetadataDepth)
	}
	var out strings.Builder
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(obj); err != nil {
		return nil, apperr.Wrap(err, apperr.Invalid, "invalid_metadata", "metadata cannot be encoded")
	}
	return json.RawMessage(strings.TrimSuffix(out.String(), "\n")), nil
}

// depth returns how deeply v nests objects and arrays (an object of
// scalars is 1).
func depth(v any) int {
	deepest := 0
	switch x := v.(type) {
	case map[string]any:
		for _, child := range x {
			deepest = max(deepest, depth(child))
		}
	case []any:
		for _, child := range x {
			deepest = max(deepest, depth(child))
		}
	default:
		return 0
	}
	return deepest + 1
}

// Register stores a message for clientID: body encrypted, number hashed and
// masked. It answers only once the row is committed. A repeated message_id
// with the same payload returns the original receipt (Created false); with a
// different payload it is a Conflict.
func (s *Messages) Register(ctx context.Context, clientID string, req RegisterRequest) (Receipt, error) {
	if req.MessageID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return Receipt{}, fmt.Errorf("generating message id: %w", err)
		}
		req.MessageID = id.String()
	}
	hasher, keys := s.Hasher(), s.Keys()
	if hasher == nil || keys == nil {
		return Receipt{}, apperr.New(apperr.Unavailable, "keys_unavailable", "the encryption keys are not loaded")
	}
	payloadHash := hasher.Hash(payloadFingerprint(clientID, req))
	envelope, err := keys.Encrypt([]byte(req.MessageBody), []byte(req.MessageID))
	if err != nil {
		return Receipt{}, fmt.Errorf("encrypting message %s: %w", req.MessageID, err)
	}
	keyID, err := keyring.KeyID(envelope)
	if err != nil {
		return Receipt{}, fmt.Errorf("reading key id of message %s: %w", req.MessageID, err)
	}
	msg := &storage.Message{
		MessageID:          req.MessageID,
		ClientID:           clientID,
		SenderNumberHash:   hasher.Hash(req.SenderNumber),
		SenderNumberMasked: phone.Mask(req.SenderNumber),
		BodyEncrypted:      envelope,
		EncryptionKeyID:    keyID,
		PayloadHash:        payloadHash,
		Metadata:           req.Metadata,
		Status:             storage.MessageQueued,
	}
	err = s.inserter().Insert(ctx, msg)
	if errors.Is(err, storage.ErrConflict) {
		return s.repeatedRegistration(ctx, req.MessageID, payloadHash)
	}
	if err != nil {
		return Receipt{}, fmt.Errorf("registering message %s: %w", req.MessageID, err)
	}
	return Receipt{MessageID: msg.MessageID, Status: storage.MessageQueued, QueuedAt: msg.QueuedAt, Created: true}, nil
}

func (s *Messages) inserter() interface {
	Insert(ctx context.Context, m *storage.Message) error
} {
	if s.Inserter != nil {
		return s.Inserter
	}
	return s.Store.Messages
}

func (s *Messages) repeatedRegistration(ctx context.Context, messageID, payloadHash string) (Receipt, error) {
	existing, err := s.Store.Messages.GetByMessageID(ctx, messageID)
	if err != nil {
		return Receipt{}, fmt.Errorf("loading registered message %s: %w", messageID, err)
	}
	if existing.PayloadHash != payloadHash {
		return Receipt{}, apperr.New(apperr.Conflict, "message_id_conflict",
			"message %s is already registered with a different payload", messageID)
	}
	return Receipt{MessageID: existing.MessageID, Status: storage.MessageQueued, QueuedAt: existing.QueuedAt}, nil
}

// payloadFingerprint is what a retried registration must repeat exactly.
// It is hashed with the secret hash key, never stored in clear, since it
// contains the phone number.
func payloadFingerprint(clientID string, req RegisterRequest) string {
	return strings.Join([]string{"register/v1", clientID, req.SenderNumber, req.MessageBody, string(req.Metadata)}, "\x00")
}

// StatusRequest is the body of PUT /internal/messages/{id}/status.
type StatusRequest struct {
	Status string `json:"status"`
	// Error describes a failed attempt; kept as last_error.
	Error string `json:"error"`
	// Reason is a short code for failures, used as a metrics label.
	Reason string `json:"reason"`
}

// DeliverRequest is the body of POST /internal/messages/deliver.
type DeliverRequest struct {
	MessageID string `json:"message_id"`
}

// State is a message's delivery state as the internal API reports it.
type State struct {
	MessageID   string     `json:"message_id"`
	Status      string     `json:"status"`
	Attempts    int        `json:"attempts"`
	LastError   *string    `json:"last_error"`
	QueuedAt    time.Time  `json:"queued_at"`
	DeliveredAt *time.Time `json:"delivered_at"`
	FailedAt    *time.Time `json:"failed_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	// ClientID is the proxy that registered the message.
	ClientID string `json:"client_id"`
	// Changed is false when the request changed nothing: it repeated the
	// current state, so its error and reason were not recorded either.
	Changed bool `json:"changed"`
}

const maxErrorChars = 1000

var reasonPattern = regexp.MustCompile(`^[a-z0-9_]{1,32}$`)

// DecodeStatus parses and checks a status update.
func DecodeStatus(data []byte) (StatusRequest, error) {
	var req StatusRequest
	if err := strictjson.Decode(data, &req); err != nil {
		return req, err
	}
	switch req.Status {
	case storage.MessageProcessing, storage.MessageRetrying, storage.MessageDelivered, storage.MessageFailed:
	case "":
		return req, apperr.New(apperr.Invalid, "missing_status", "status is required")
	default:
		return req, apperr.New(apperr.Invalid, "invalid_status",
			"status must be one of processing, retrying, delivered, failed")
	}
	if utf8.RuneCountInString(req.Error) > maxErrorChars {
		return req, apperr.New(apperr.Invalid, "error_too_long", "error must have at most %d characters", maxErrorChars)
	}
	if req.Reason != "" && !reasonPattern.MatchString(req.Reason) {
		return req, apperr.New(apperr.Invalid, "invalid_reason", "reason must be 1-32 characters of a-z, 0-9 and _")
	}
	return req, nil
}

// DecodeDeliver parses and checks a delivery confirmation.
func DecodeDeliver(data []byte) (DeliverRequest, error) {
	var req DeliverRequest
	if err := strictjson.Decode(data, &req); err != nil {
		return req, err
	}
	id, err := ParseMessageID(req.MessageID)
	req.MessageID = id
	return req, err
}

// ParseMessageID checks a message id from a path or body.
func ParseMessageID(s string) (string, error) {
	if s == "" {
		return "", apperr.New(apperr.Invalid, "missing_message_id", "message_id is required")
	}
	id, err := uuid.Parse(s)
	if err != nil || len(s) != 36 {
		return "", apperr.New(apperr.Invalid, "invalid_message_id", "message_id must be a UUID")
	}
	return id.String(), nil
}

// transitions lists the legal moves of the delivery state machine:
// queued → processing → (retrying → processing)* → delivered | failed.
// Deliver from queued is accepted because a worker may confirm a delivery
// without having reported that it started. Repeating the current state is
// answered idempotently, except retrying, which counts another attempt.
var transitions = map[string][]string{
	storage.MessageQueued:     {storage.MessageProcessing, storage.MessageDelivered},
	storage.MessageProcessing: {storage.MessageRetrying, storage.MessageDelivered, storage.MessageFailed},
	storage.MessageRetrying:   {storage.MessageProcessing, storage.MessageRetrying, storage.MessageDelivered, storage.MessageFailed},
}

// transitionAllowed reports whether the state machine moves from to to.
func transitionAllowed(from, to string) bool {
	for _, next := range transitions[from] {
		if next == to {
			return true
		}
	}
	return false
}

// maxCASRetries bounds how often a transition is re-decided after losing a
// race with another worker; each loss means real progress elsewhere.
const maxCASRetries = 8

// UpdateStatus moves a message to req.Status with a compare-and-set, so
// concurrent workers never overwrite each other's update.
func (s *Messages) UpdateStatus(ctx context.Context, messageID string, req StatusRequest) (State, error) {
	for range maxCASRetries {
		msg, err := s.Store.Messages.GetByMessageID(ctx, messageID)
		if errors.Is(err, storage.ErrNotFound) {
			return State{}, apperr.New(apperr.NotFound, "message_not_found", "no message with id %s", messageID)
		}
		if err != nil {
			return State{}, fmt.Errorf("loading message %s: %w", messageID, err)
		}
		if msg.Status == req.Status && req.Status != storage.MessageRetrying {
			return stateOf(msg, false), nil
		}
		if !transitionAllowed(msg.Status, req.Status) {
			return State{}, apperr.New(apperr.Conflict, "illegal_transition",
				"message %s is %s and cannot become %s", messageID, msg.Status, req.Status)
		}
		update := storage.StatusUpdate{MessageID: messageID, From: msg.Status, To: req.Status, At: time.Now().UTC()}
		if req.Status == storage.MessageRetrying {
			update.AttemptsDelta = 1
		}
		if req.Status == storage.MessageRetrying || req.Status == storage.MessageFailed {
			update.LastError = req.Error
		}
		changed, err := s.Store.Messages.UpdateStatus(ctx, update)
		if err != nil {
			return State{}, fmt.Errorf("updating message %s: %w", messageID, err)
		}
		if changed {
			updated, err := s.Store.Messages.GetByMessageID(ctx, messageID)
			if err != nil {
				return State{}, fmt.Errorf("reloading message %s: %w", messageID, err)
			}
			return stateOf(updated, true), nil
		}
	}
	return State{}, apperr.New(apperr.Conflict, "concurrent_update",
		"message %s is being updated concurrently; retry", messageID)
}

// Deliver marks a message delivered; confirming twice is answered with the
// same state.
func (s *Messages) Deliver(ctx context.Context, messageID string) (State, error) {
	return s.UpdateStatus(ctx, messageID, StatusRequest{Status: storage.MessageDelivered})
}

func stateOf(m *storage.Message, changed bool) State {
	return State{
		MessageID: m.MessageID, Status: m.Status, Attempts: m.Attempts, LastError: m.LastError,
		QueuedAt: m.QueuedAt, DeliveredAt: m.DeliveredAt, FailedAt: m.FailedAt, UpdatedAt: m.UpdatedAt,
		ClientID: m.ClientID, Changed: changed,
	}
}
