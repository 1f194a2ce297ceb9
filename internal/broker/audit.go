package broker

import (
	"context"
	"encoding/binary"
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/storage"
)

// Page sizes of the audit list.
const (
	DefaultAuditPageSize = 50
	MaxAuditPageSize     = 200
)

// Longest filter values: the audit_log column widths.
const (
	maxAuditActor  = 255
	maxAuditAction = 64
	maxAuditTarget = 255
)

// AuditLog lists and exports the audit log for GET /admin/audit.
type AuditLog struct {
	Store *storage.Store
	// CursorKey signs the list's cursors (at least 32 random bytes; the
	// portal's cursor key will do: the cursors are domain-separated).
	CursorKey []byte
	// ExportPageSize is how many entries the CSV export reads per query
	// (default and maximum storage.MaxPageSize).
	ExportPageSize int
}

// AuditQuery is an audit list request as the client sent it: every field
// is the raw query parameter, "" when absent.
type AuditQuery struct {
	Actor   string
	Action  string
	Target  string
	Outcome string
	// Since and Until are RFC 3339 times: entries created at or after
	// Since and before Until.
	Since string
	Until string
	// Limit is the page size, 1 to MaxAuditPageSize (default
	// DefaultAuditPageSize).
	Limit  string
	Cursor string
}

// AuditItem is one entry as the API shows it.
type AuditItem struct {
	ID         int64     `json:"id"`
	CreatedAt  time.Time `json:"created_at"`
	Actor      string    `json:"actor"`
	Action     string    `json:"action"`
	Target     string    `json:"target"`
	Outcome    string    `json:"outcome"`
	RemoteAddr string    `json:"remote_addr"`
	Details    *string   `json:"details"`
}

// AuditPage is one page of the list, newest first; NextCursor is empty on
// the last.
type AuditPage struct {
	Items      []AuditItem `json:"items"`
	NextCursor string      `json:"next_cursor,omitempty"`
}

func auditItemOf(e *storage.AuditEntry) AuditItem {
	return AuditItem{
		ID: e.ID, CreatedAt: e.CreatedAt, Actor: e.Actor, Action: e.Action, Target: e.Target,
		Outcome: e.Outcome, RemoteAddr: e.RemoteAddr, Details: e.Details,
	}
}

// List returns one page of the entries matching q.
func (a *AuditLog) List(ctx context.Context, q AuditQuery) (AuditPage, error) {
	f, err := a.filter(q)
	if err != nil {
		return AuditPage{}, err
	}
	// One row more than the page tells whether another page follows.
	limit := f.Limit
	f.Limit = limit + 1
	entries, err := a.Store.Audit.List(ctx, f)
	if err != nil {
		return AuditPage{}, fmt.Errorf("listing audit entries: %w", err)
	}
	page := AuditPage{Items: make([]AuditItem, 0, min(len(entries), limit))}
	for i := range entries {
		if i == limit {
			page.NextCursor = a.sealCursor(entries[i-1].Key(), f)
			break
		}
		page.Items = append(page.Items, auditItemOf(&entries[i]))
	}
	return page, nil
}

// filter checks q and turns it into a storage filter.
func (a *AuditLog) filter(q AuditQuery) (storage.AuditFilter, error) {
	f := storage.AuditFilter{Actor: q.Actor, Action: q.Action, Target: q.Target, Outcome: q.Outcome, Limit: DefaultAuditPageSize}
	for _, field := range []struct {
		name, value string
		max         int
	}{{"actor", q.Actor, maxAuditActor}, {"action", q.Action, maxAuditAction}, {"target", q.Target, maxAuditTarget}} {
		if !utf8.ValidString(field.value) || utf8.RuneCountInString(field.value) > field.max {
			return f, apperr.New(apperr.Invalid, "invalid_"+field.name, "%s must be valid UTF-8 of at most %d characters", field.name, field.max)
		}
	}
	if q.Outcome != "" && !slices.Contains(storage.AuditOutcomes, q.Outcome) {
		return f, apperr.New(apperr.Invalid, "invalid_outcome", "outcome must be success, failure or denied")
	}
	var err error
	if f.Since, err = parseTime("since", q.Since); err != nil {
		return f, err
	}
	if f.Until, err = parseTime("until", q.Until); err != nil {
		return f, err
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && f.Since.After(f.Until) {
		return f, apperr.New(apperr.Invalid, "invalid_time_range", "since must not be later than until")
	}
	if q.Limit != "" {
		if f.Limit, err = parseLimitMax(q.Limit, MaxAuditPageSize); err != nil {
			return f, err
		}
	}
	if q.Cursor != "" {
		key, err := a.openCursor(q.Cursor, f)
		if err != nil {
			return f, err
		}
		f.Before = &key
	}
	return f, nil
}

// auditScope binds a cursor to the filters (not the page size, which may
// change from page to page without skipping or repeating entries).
func auditScope(f storage.AuditFilter) []byte {
	return fmt.Appendf(nil, "%s\x00%s\x00%s\x00%s\x00%d\x00%d",
		f.Actor, f.Action, f.Target, f.Outcome, unixMicro(f.Since), unixMicro(f.Until))
}

func unixMicro(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func (a *AuditLog) cursors() cursorSealer {
	return cursorSealer{key: a.CursorKey, domain: "msgbroker audit cursor", size: 16}
}

// sealCursor encodes the last entry of a page: base64url(created_at in
// Unix microseconds (8 bytes) || id (8 bytes) || HMAC-SHA-256[:16]).
func (a *AuditLog) sealCursor(k storage.AuditKey, f storage.AuditFilter) string {
	payload := binary.BigEndian.AppendUint64(nil, uint64(k.CreatedAt.UnixMicro()))
	payload = binary.BigEndian.AppendUint64(payload, uint64(k.ID))
	return a.cursors().seal(payload, auditScope(f))
}

// openCursor checks a cursor against the filters it must have been issued
// for.
func (a *AuditLog) openCursor(c string, f storage.AuditFilter) (storage.AuditKey, error) {
	raw, err := a.cursors().open(c, auditScope(f))
	if err != nil {
		return storage.AuditKey{}, err
	}
	id := int64(binary.BigEndian.Uint64(raw[8:]))
	if id <= 0 {
		return storage.AuditKey{}, errBadCursor
	}
	return storage.AuditKey{CreatedAt: time.UnixMicro(int64(binary.BigEndian.Uint64(raw[:8]))).UTC(), ID: id}, nil
}

// AuditExport is a checked export request; see AuditLog.Export.
type AuditExport struct {
	log *AuditLog
	f   storage.AuditFilter
}

// Export checks q for a CSV export of every matching entry (from q's
// cursor, if any; the limit is checked but the export is not cut to it).
// Checking before writing lets an HTTP handler still answer bad input with
// a JSON error.
func (a *AuditLog) Export(q AuditQuery) (AuditExport, error) {
	f, err := a.filter(q)
	if err != nil {
		return AuditExport{}, err
	}
	f.Limit = storage.MaxPageSize
	if a.ExportPageSize > 0 {
		f.Limit = min(a.ExportPageSize, storage.MaxPageSize)
	}
	return AuditExport{log: a, f: f}, nil
}

// AuditCSVHeader is the header row of the CSV export.
var AuditCSVHeader = []string{"id", "created_at", "actor", "action", "target", "outcome", "remote_addr", "details"}

// WriteCSV writes the export as RFC 4180 CSV (header row, CRLF line ends),
// reading and flushing a page (ExportPageSize entries) at a time so
// that memory stays flat however long the log is. An error after the
// first write leaves w holding a truncated file: an HTTP handler must then
// abort the response rather than end it normally.
func (e AuditExport) WriteCSV(ctx context.Context, w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.UseCRLF = true
	if err := cw.Write(AuditCSVHeader); err != nil {
		return err
	}
	f := e.f
	for {
		entries, err := e.log.Store.Audit.List(ctx, f)
		if err != nil {
			return fmt.Errorf("exporting audit entries: %w", err)
		}
		for i := range entries {
			if err := cw.Write(auditCSVRow(&entries[i])); err != nil {
				return err
			}
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return err
		}
		if len(entries) < f.Limit {
			return nil
		}
		key := entries[len(entries)-1].Key()
		f.Before = &key
	}
}

func auditCSVRow(e *storage.AuditEntry) []string {
	details := ""
	if e.Details != nil {
		details = *e.Details
	}
	return []string{
		strconv.FormatInt(e.ID, 10), e.CreatedAt.UTC().Format(time.RFC3339Nano),
		csvCell(e.Actor), csvCell(e.Action), csvCell(e.Target), csvCell(e.Outcome),
		csvCell(e.RemoteAddr), csvCell(details),
	}
}

// csvCell defuses a cell that a spreadsheet would run as a formula (one
// starting with =, +, -, @, or a tab or carriage return that some strip
// before looking) by prefixing an apostrophe, as OWASP recommends. Actors,
// targets and details can be chosen by whoever caused the entry, so every
// text cell goes through it.
func csvCell(s string) string {
	if s != "" && (s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@' || s[0] == '\t' || s[0] == '\r') {
		return "'" + s
	}
	return s
}
