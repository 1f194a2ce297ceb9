package adminapi

import (
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/internal/httpapi"
)

// stats answers the CLI's numbers plus the portal's chart series and the
// delivery latency, read from the counters storage keeps.
func (h *Handler) stats(w http.ResponseWriter, r *http.Request, c *call) error {
	s, err := broker.CollectAdminStats(r.Context(), c.svcs.Store, time.Now())
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, s)
	return nil
}

// audit lists the audit log a page at a time, or, for a client that
// prefers text/csv, exports every matching entry as one CSV file.
func (h *Handler) audit(w http.ResponseWriter, r *http.Request, c *call) error {
	q := r.URL.Query()
	query := broker.AuditQuery{
		Actor: q.Get("actor"), Action: q.Get("action"), Target: q.Get("target"), Outcome: q.Get("outcome"),
		Since: q.Get("since"), Until: q.Get("until"), Limit: q.Get("limit"), Cursor: q.Get("cursor"),
	}
	if wantsCSV(r.Header.Values("Accept")) {
		return h.exportAudit(w, r, c, query)
	}
	page, err := c.svcs.Audit.List(r.Context(), query)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, page)
	return nil
}

// exportAudit streams the CSV export. Bad input is refused (as JSON)
// before the first byte; a failure after it aborts the response, so the
// client sees a broken transfer rather than a complete-looking file that
// is cut short.
func (h *Handler) exportAudit(w http.ResponseWriter, r *http.Request, c *call, q broker.AuditQuery) error {
	export, err := c.svcs.Audit.Export(q)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="audit.csv"`)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if err := export.WriteCSV(r.Context(), w); err != nil {
		h.logger.Error("audit export failed after it started; aborting the response", zap.Error(err))
		panic(http.ErrAbortHandler)
	}
	return nil
}

// wantsCSV reports whether the Accept header prefers text/csv to JSON:
// text/csv is listed with a q above 0 and above application/json's.
func wantsCSV(accept []string) bool {
	csvQ, jsonQ := -1.0, -1.0
	for _, field := range accept {
		for _, item := range strings.Split(field, ",") {
			mediaType, params, err := mime.ParseMediaType(strings.TrimSpace(item))
			if err != nil {
				continue
			}
			q := qualityOf(params)
			switch mediaType {
			case "text/csv":
				csvQ = max(csvQ, q)
			case "application/json":
				jsonQ = max(jsonQ, q)
			}
		}
	}
	return csvQ > 0 && csvQ > jsonQ
}

func qualityOf(params map[string]string) float64 {
	v, ok := params["q"]
	if !ok {
		return 1
	}
	q, err := strconv.ParseFloat(v, 64)
	if err != nil || q < 0 || q > 1 {
		return 0
	}
	return q
}
