package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/internal/clientca"
	"github.com/msgbroker/caddy-msgbroker/storage"
)

// Page sizes of the portal's message list.
const (
	DefaultPortalPageSize = 50
	MaxPortalPageSize     = 200
)

// MessageQuery is a portal message list request as the client sent it.
type MessageQuery struct {
	Status   string
	ClientID string
	Since    string
	Until    string
	// Q keeps messages whose id starts with it.
	Q      string
	Limit  string
	Cursor string
}

// MessageItem is one message as the portal lists it: never the body.
type MessageItem struct {
	MessageID   string     `json:"message_id"`
	ClientID    string     `json:"client_id"`
	Sender      string     `json:"sender"`
	Status      string     `json:"status"`
	Attempts    int        `json:"attempts"`
	LastError   *string    `json:"last_error"`
	QueuedAt    time.Time  `json:"queued_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	DeliveredAt *time.Time `json:"delivered_at"`
	FailedAt    *time.Time `json:"failed_at"`
}

// MessagePage is one page of the list; NextCursor is empty on the last.
type MessagePage struct {
	Items      []MessageItem `json:"items"`
	NextCursor string        `json:"next_cursor,omitempty"`
}

// MessageDetail is one message with its metadata, and its body when an
// admin asked to decrypt it.
type MessageDetail struct {
	MessageItem
	Metadata json.RawMessage `json:"metadata"`
	Body     *string         `json:"body,omitempty"`
}

func itemOf(m *storage.Message) MessageItem {
	return MessageItem{
		MessageID: m.MessageID, ClientID: m.ClientID, Sender: m.SenderNumberMasked,
		Status: m.Status, Attempts: m.Attempts, LastError: m.LastError,
		QueuedAt: m.QueuedAt, UpdatedAt: m.UpdatedAt, DeliveredAt: m.DeliveredAt, FailedAt: m.FailedAt,
	}
}

// ListMessages returns a page of the messages p may see: its own
// client's, or every client's for an admin.
func (s *Portal) ListMessages(ctx context.Context, p *Principal, q MessageQuery) (MessagePage, error) {
	f, err := s.filterFor(p, q)
	if err != nil {
		return MessagePage{}, err
	}
	scope := s.cursorScope(p, f)
	if q.Cursor != "" {
		if f.AfterID, err = s.cursors().open(q.Cursor, scope); err != nil {
			return MessagePage{}, err
		}
	}
	// One row more than the page tells whether another page follows.
	limit := f.Limit
	f.Limit = limit + 1
	msgs, err := s.Store.Messages.List(ctx, f)
	if err != nil {
		return MessagePage{}, fmt.Errorf("listing messages: %w", err)
	}
	page := MessagePage{Items: make([]MessageItem, 0, min(len(msgs), limit))}
	for i := range msgs {
		if i == limit {
			page.NextCursor = s.cursors().seal(msgs[i-1].ID, scope)
			break
		}
		page.Items = append(page.Items, itemOf(&msgs[i]))
	}
	return page, nil
}

// filterFor turns a query into a storage filter, confining a tenant to
// its client.
func (s *Portal) filterFor(p *Principal, q MessageQuery) (storage.MessageFilter, error) {
	var f storage.MessageFilter
	if p.IsAdmin() {
		if q.ClientID != "" && !clientca.ValidClientID(q.ClientID) {
			return f, apperr.New(apperr.Invalid, "invalid_client_id", "client_id is 1-64 characters of A-Z, a-z, 0-9, '.', '_', '-'")
		}
		f.ClientID = q.ClientID
	} else {
		if p.User.ClientID == nil {
			return f, apperr.New(apperr.Forbidden, "no_client", "this account is not attached to a client; ask an administrator")
		}
		if q.ClientID != "" && q.ClientID != *p.User.ClientID {
			return f, apperr.New(apperr.Forbidden, "client_forbidden", "you may only list your own client's messages")
		}
		f.ClientID = *p.User.ClientID
	}
	switch q.Status {
	case "", storage.MessageQueued, storage.MessageProcessing, storage.MessageRetrying, storage.MessageDelivered, storage.MessageFailed:
		f.Status = q.Status
	default:
		return f, apperr.New(apperr.Invalid, "invalid_status", "status must be queued, processing, retrying, delivered or failed")
	}
	var err error
	if f.Since, err = parseTime("since", q.Since); err != nil {
		return f, err
	}
	if f.Until, err = parseTime("until", q.Until); err != nil {
		return f, err
	}
	if !validIDPrefix(q.Q) {
		return f, apperr.New(apperr.Invalid, "invalid_q", "q is the start of a message id: up to 36 characters of 0-9, a-f and '-'")
	}
	f.MessageIDPrefix = strings.ToLower(q.Q)
	f.Limit = DefaultPortalPageSize
	if q.Limit != "" {
		n, err := parseLimit(q.Limit)
		if err != nil {
			return f, err
		}
		f.Limit = n
	}
	return f, nil
}

func parseTime(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, apperr.New(apperr.Invalid, "invalid_"+name, "%s must be an RFC 3339 time such as 2026-01-02T15:04:05Z", name)
	}
	return t, nil
}

func parseLimit(v string) (int, error) { return parseLimitMax(v, MaxPortalPageSize) }

// parseLimitMax reads a page size: a whole number from 1 to maxN.
func parseLimitMax(v string, maxN int) (int, error) {
	n := 0
	for _, c := range v {
		if c < '0' || c > '9' || n > maxN {
			n = -1
			break
		}
		n = n*10 + int(c-'0')
	}
	if n < 1 || n > maxN {
		return 0, apperr.New(apperr.Invalid, "invalid_limit", "limit must be a whole number from 1 to %d", maxN)
	}
	return n, nil
}

func validIDPrefix(q string) bool {
	if len(q) > 36 {
		return false
	}
	for _, c := range strings.ToLower(q) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c == '-') {
			return false
		}
	}
	return true
}

// cursorScope binds a cursor to the caller and the filter it was made
// for, so it cannot continue another user's list or another query.
func (s *Portal) cursorScope(p *Principal, f storage.MessageFilter) []byte {
	return fmt.Appendf(nil, "%d\x00%s\x00%s\x00%s\x00%d\x00%d\x00%d",
		p.User.ID, f.ClientID, f.Status, f.MessageIDPrefix, f.Since.UnixNano(), f.Until.UnixNano(), f.Limit)
}

func (s *Portal) cursors() cursorSealer {
	return cursorSealer{key: s.CursorKey, label: "msgbroker portal cursor"}
}

// GetMessage returns one message p may see. Another client's message is
// not found, exactly as a missing one, so ids of other tenants cannot be
// probed. With decrypt, an admin gets the body and an audit row records
// who read which message from where.
func (s *Portal) GetMessage(ctx context.Context, p *Principal, messageID string, decrypt bool, remoteAddr string) (MessageDetail, error) {
	id, err := ParseMessageID(messageID)
	if err != nil {
		return MessageDetail{}, err
	}
	notFound := apperr.New(apperr.NotFound, "message_not_found", "no message %s", id)
	m, err := s.Store.Messages.GetByMessageID(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return MessageDetail{}, notFound
	}
	if err != nil {
		return MessageDetail{}, fmt.Errorf("loading message %s: %w", id, err)
	}
	if !p.IsAdmin() && (p.User.ClientID == nil || *p.User.ClientID != m.ClientID) {
		return MessageDetail{}, notFound
	}
	d := MessageDetail{MessageItem: itemOf(m), Metadata: m.Metadata}
	if d.Metadata == nil {
		d.Metadata = json.RawMessage("null")
	}
	if !decrypt {
		return d, nil
	}
	if !p.IsAdmin() {
		return MessageDetail{}, apperr.New(apperr.Forbidden, "decrypt_forbidden", "only administrators may read message bodies")
	}
	body, err := s.decrypt(m)
	outcome, details := storage.AuditSuccess, "portal"
	if err != nil {
		outcome, details = storage.AuditFailure, "portal: "+errorSummary(err)
	}
	if aerr := Audit(ctx, s.Store, Actor{Name: p.User.Email, RemoteAddr: remoteAddr}, "message.decrypt", id, outcome, details); aerr != nil {
		// A body read that cannot be audited is not served.
		s.logger().Error("audit log write failed; body withheld", zap.String("message_id", id), zap.Error(aerr))
		return MessageDetail{}, fmt.Errorf("auditing decryption of %s: %w", id, aerr)
	}
	if err != nil {
		return MessageDetail{}, err
	}
	d.Body = &body
	return d, nil
}

func (s *Portal) decrypt(m *storage.Message) (string, error) {
	var kr = s.Keys
	if kr == nil || kr() == nil {
		return "", apperr.New(apperr.Unavailable, "keys_unavailable", "the encryption keys are not loaded")
	}
	plain, err := kr().Decrypt(m.BodyEncrypted, []byte(m.MessageID))
	if err != nil {
		return "", fmt.Errorf("decrypting message %s: %w", m.MessageID, err)
	}
	return string(plain), nil
}
