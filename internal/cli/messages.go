package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/storage"
)

// messageJSON is a message as --json prints it. Body is set only when it
// was decrypted on request.
type messageJSON struct {
	MessageID          string          `json:"message_id"`
	ClientID           string          `json:"client_id"`
	SenderNumberMasked string          `json:"sender_number_masked"`
	Status             string          `json:"status"`
	Attempts           int             `json:"attempts"`
	LastError          *string         `json:"last_error"`
	Metadata           json.RawMessage `json:"metadata"`
	EncryptionKeyID    string          `json:"encryption_key_id"`
	QueuedAt           time.Time       `json:"queued_at"`
	DeliveredAt        *time.Time      `json:"delivered_at"`
	FailedAt           *time.Time      `json:"failed_at"`
	CreatedAt          time.Time       `json:"created_at"`
	UpdatedAt          time.Time       `json:"updated_at"`
	Body               *string         `json:"message_body,omitempty"`
}

func messageOut(m *storage.Message) messageJSON {
	meta := m.Metadata
	if len(meta) == 0 {
		meta = json.RawMessage("null")
	}
	return messageJSON{MessageID: m.MessageID, ClientID: m.ClientID, SenderNumberMasked: m.SenderNumberMasked,
		Status: m.Status, Attempts: m.Attempts, LastError: m.LastError, Metadata: meta, EncryptionKeyID: m.EncryptionKeyID,
		QueuedAt: m.QueuedAt, DeliveredAt: m.DeliveredAt, FailedAt: m.FailedAt, CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt}
}

var messageStatuses = []string{storage.MessageQueued, storage.MessageProcessing, storage.MessageRetrying,
	storage.MessageDelivered, storage.MessageFailed}

func messageCommand() *cobra.Command {
	cmd := group(&cobra.Command{Use: "message", Short: "Lists and shows messages"})

	list := &cobra.Command{
		Use:   "list [--client ID] [--status S] [--since T] [--limit N]",
		Short: "Lists messages, newest first",
		Long: `Lists messages, newest first, without their bodies. --since takes an RFC 3339
time (2026-11-24T10:00:00Z), a date (2026-11-24, UTC) or an age such as
90m, 24h or 7d.`,
		Args: nargs(0, 0),
		RunE: caddycmd.WrapCommandFuncForCobra(cmdMessageList),
	}
	f := list.Flags()
	f.String("client", "", "Only messages of this client id")
	f.String("status", "", "Only messages with this status: "+strings.Join(messageStatuses, ", "))
	f.String("since", "", "Only messages created at or after this time")
	f.Int("limit", storage.DefaultPageSize, fmt.Sprintf("Number of messages to show, at most %d", storage.MaxPageSize))

	view := &cobra.Command{
		Use:   "view UUID [--decrypt]",
		Short: "Shows one message; --decrypt shows its body and audits that",
		Long: `Shows one message. With --decrypt the body is decrypted and shown; every
decryption is written to the audit log (actor "cli", action
message.decrypt) before the body is printed, and nothing is printed if
that write fails.`,
		Args: nargs(1, 1),
		RunE: caddycmd.WrapCommandFuncForCobra(cmdMessageView),
	}
	view.Flags().Bool("decrypt", false, "Decrypt and show the body (audited)")

	cmd.AddCommand(list, view)
	return cmd
}

func cmdMessageList(fl caddycmd.Flags) (int, error) {
	status, limit := fl.String("status"), fl.Int("limit")
	filter := storage.MessageFilter{ClientID: fl.String("client"), Status: status, Limit: limit}
	if status != "" && !slices.Contains(messageStatuses, status) {
		return exit(usagef("--status must be one of %s, not %q", strings.Join(messageStatuses, ", "), status))
	}
	if limit < 1 || limit > storage.MaxPageSize {
		return exit(usagef("--limit must be between 1 and %d", storage.MaxPageSize))
	}
	if since := fl.String("since"); since != "" {
		t, err := parseSince(since, stdio.now())
		if err != nil {
			return exit(usageError{err})
		}
		filter.Since = t
	}
	return withServices(fl, database, func(ctx context.Context, out *console, svc *services) error {
		msgs, err := svc.Store.Messages.List(ctx, filter)
		if err != nil {
			return err
		}
		if out.jsonOut {
			return out.printJSON(jsonList(msgs, messageOut))
		}
		rows := make([][]string, 0, len(msgs))
		for _, m := range msgs {
			rows = append(rows, []string{m.MessageID, m.ClientID, m.SenderNumberMasked, m.Status,
				strconv.Itoa(m.Attempts), timeText(m.CreatedAt)})
		}
		if err := out.table([]string{"MESSAGE ID", "CLIENT", "SENDER", "STATUS", "ATTEMPTS", "CREATED"}, rows); err != nil {
			return err
		}
		if len(msgs) == limit {
			fmt.Fprintf(out.io.err, "(the newest %d; use --limit or filters to see others)\n", limit)
		}
		return nil
	})
}

func cmdMessageView(fl caddycmd.Flags) (int, error) {
	id, err := broker.ParseMessageID(strings.ToLower(fl.Arg(0)))
	if err != nil {
		return exit(err)
	}
	decrypt := fl.Bool("decrypt")
	what := database
	if decrypt {
		what = withKeys
	}
	return withServices(fl, what, func(ctx context.Context, out *console, svc *services) error {
		m, err := svc.Store.Messages.GetByMessageID(ctx, id)
		if errors.Is(err, storage.ErrNotFound) {
			return apperr.New(apperr.NotFound, "message_not_found", "no message with id %s", id)
		}
		if err != nil {
			return err
		}
		view := messageOut(m)
		if decrypt {
			body, err := decryptAudited(ctx, svc, m)
			if err != nil {
				return err
			}
			view.Body = &body
		}
		if out.jsonOut {
			return out.printJSON(view)
		}
		return out.printMessage(view)
	})
}

// decryptAudited decrypts the body of m and writes the attempt to the
// audit log; if that write fails, the body is not shown.
func decryptAudited(ctx context.Context, svc *services, m *storage.Message) (string, error) {
	return broker.DecryptBody(ctx, svc.Store, svc.Keys.Keyring, actor(), "cli", m)
}

func (c *console) printMessage(m messageJSON) error {
	body := "(encrypted; --decrypt shows it and writes an audit entry)"
	if m.Body != nil {
		body = *m.Body
	}
	meta := "-"
	if string(m.Metadata) != "null" {
		meta = string(m.Metadata)
	}
	fields := [][2]string{
		{"Message ID", m.MessageID},
		{"Client", m.ClientID},
		{"Sender", m.SenderNumberMasked},
		{"Status", m.Status},
		{"Attempts", strconv.Itoa(m.Attempts)},
		{"Last error", strPtrText(m.LastError)},
		{"Metadata", meta},
		{"Queued", timeText(m.QueuedAt)},
		{"Delivered", timePtrText(m.DeliveredAt)},
		{"Failed", timePtrText(m.FailedAt)},
		{"Created", timeText(m.CreatedAt)},
		{"Updated", timeText(m.UpdatedAt)},
		{"Key", m.EncryptionKeyID},
		{"Body", body},
	}
	rows := make([][]string, 0, len(fields))
	for _, f := range fields {
		rows = append(rows, []string{f[0] + ":", f[1]})
	}
	return c.rows(rows)
}

// rows writes aligned rows without a header.
func (c *console) rows(rows [][]string) error {
	if len(rows) == 0 {
		return nil
	}
	return c.table(rows[0], rows[1:])
}

// parseSince reads --since: RFC 3339, a date, or an age before now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n >= 0 {
			return now.Add(-time.Duration(n) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--since %q is not an RFC 3339 time, a date (2006-01-02) or an age such as 24h or 7d", s)
}
