package integration

import (
	"encoding/csv"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestAdminStatistics: after three registrations the numbers, the
// per-client counts and the chart series show them, with the series at
// their documented lengths (the answer is validated against the OpenAPI
// document by the client).
func TestAdminStatistics(t *testing.T) {
	eachAdminDialect(t, func(t *testing.T, p *portalGateway) {
		admin, _ := p.login("admin@example.com")
		p.register("proxy-1", 3)
		st := p.do(portalCall{method: "GET", path: "/admin/stats", token: admin}).want(t, http.StatusOK, "")
		messages := st.Body["messages"].(map[string]any)
		if messages["total"] != 3.0 || messages["queued"] != 3.0 || messages["last_24_hours"] != 3.0 {
			t.Errorf("messages = %v, want 3 queued in the last 24 hours", messages)
		}
		byClient := st.Body["by_client"].([]any)
		if len(byClient) != 1 || byClient[0].(map[string]any)["client_id"] != "proxy-1" || byClient[0].(map[string]any)["total"] != 3.0 {
			t.Errorf("by_client = %v", byClient)
		}
		hourly, daily := st.Body["hourly"].([]any), st.Body["daily"].([]any)
		if len(hourly) != 24 || len(daily) != 30 {
			t.Fatalf("%d hourly and %d daily points, want 24 and 30", len(hourly), len(daily))
		}
		if hourly[23].(map[string]any)["registered"] != 3.0 || daily[29].(map[string]any)["registered"] != 3.0 {
			t.Errorf("the current hour and day = %v, %v; want 3 registered in each", hourly[23], daily[29])
		}
		if lat := st.Body["delivery_latency"].(map[string]any); lat["deliveries"] != 0.0 || lat["p50_ms"] != nil {
			t.Errorf("delivery_latency without deliveries = %v", lat)
		}
	})
}

// TestAdminAuditListAndExport pages the audit log by cursor, refuses bad
// filters and foreign cursors with 400 JSON (also when CSV was asked
// for), and exports every match as CSV when text/csv is preferred.
func TestAdminAuditListAndExport(t *testing.T) {
	eachAdminDialect(t, func(t *testing.T, p *portalGateway) {
		admin, _ := p.login("admin@example.com")
		for i := range 3 {
			p.do(portalCall{method: "POST", path: "/admin/users", token: admin,
				body: map[string]any{"email": fmt.Sprintf("tenant%d@example.com", i), "role": "user", "client_id": "proxy-1"}}).
				want(t, http.StatusCreated, "")
		}
		filter := "/admin/audit?actor=admin%40example.com&action=user.create&limit=2"
		first := p.do(portalCall{method: "GET", path: filter, token: admin}).want(t, http.StatusOK, "")
		cursor := first.str("next_cursor")
		if len(first.Body["items"].([]any)) != 2 || cursor == "" {
			t.Fatalf("first page = %s", first.Raw)
		}
		second := p.do(portalCall{method: "GET", path: filter + "&cursor=" + url.QueryEscape(cursor), token: admin}).want(t, http.StatusOK, "")
		items := second.Body["items"].([]any)
		if len(items) != 1 || items[0].(map[string]any)["target"] != "user 2 tenant0@example.com" || second.str("next_cursor") != "" {
			t.Fatalf("last page = %s", second.Raw)
		}
		p.do(portalCall{method: "GET", path: "/admin/audit?action=user.delete&cursor=" + url.QueryEscape(cursor), token: admin}).
			want(t, http.StatusBadRequest, "invalid_cursor")
		p.do(portalCall{method: "GET", path: "/admin/audit?outcome=ok", token: admin}).want(t, http.StatusBadRequest, "invalid_outcome")
		p.do(portalCall{method: "GET", path: "/admin/audit?since=2026-12-02T10:00:00Z&until=2026-12-02T09:00:00Z", token: admin}).
			want(t, http.StatusBadRequest, "invalid_time_range")
		p.do(portalCall{method: "GET", path: "/admin/audit?limit=201", token: admin}).want(t, http.StatusBadRequest, "invalid_limit")
		p.do(portalCall{method: "GET", path: "/admin/audit?outcome=ok", token: admin, header: http.Header{"Accept": {"text/csv"}}}).
			want(t, http.StatusBadRequest, "invalid_outcome")
		// JSON preferred over CSV stays JSON.
		p.do(portalCall{method: "GET", path: filter, token: admin, header: http.Header{"Accept": {"application/json, text/csv;q=0.5"}}}).
			want(t, http.StatusOK, "")

		rows := auditCSV(t, p, admin, "/admin/audit?action=user.create")
		if got := strings.Join(rows[0], ","); got != "id,created_at,actor,action,target,outcome,remote_addr,details" {
			t.Fatalf("CSV header = %s", got)
		}
		// Three by the admin and the admin's own account: every match, not a page.
		if len(rows) != 1+4 || rows[1][2] != "admin@example.com" || rows[1][4] != "user 4 tenant2@example.com" || rows[1][6] != "127.0.0.1" {
			t.Fatalf("CSV rows = %q", rows)
		}
	})
}

// auditCSV GETs path preferring text/csv and parses the answer.
func auditCSV(t *testing.T, p *portalGateway, token, path string) [][]string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("https://localhost:%d%s", p.port, path), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/csv")
	resp, err := p.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" {
		t.Fatalf("CSV export = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	rows, err := csv.NewReader(resp.Body).ReadAll()
	if err != nil {
		t.Fatalf("the export is not CSV: %v", err)
	}
	return rows
}
