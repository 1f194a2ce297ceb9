package apivalidate

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// recorder is a testing.TB that records Errorf calls instead of failing.
type recorder struct {
	testing.TB
	mu     sync.Mutex
	errors []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, strings.TrimSpace(fmt.Sprintf(format, args...)))
}

func (r *recorder) Logf(string, ...any) {}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	errs := r.errors
	r.errors = nil
	return errs
}

const (
	messageID = "0b6f8a9e-5c1d-4e8f-9a7b-2c3d4e5f6a7b"
	validTime = "2026-11-24T10:30:00Z"
)

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func errorBody(code string) string {
	return `{"error":{"code":"` + code + `","message":"something"}}`
}

// fakeGateway answers like the real handlers, with a switch per test case
// to answer wrongly.
func fakeGateway(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			allow := "GET, HEAD"
			if r.URL.Query().Get("wrong") == "allow" {
				allow = "GET"
			}
			w.Header().Set("Allow", allow)
			writeJSON(w, http.StatusMethodNotAllowed, errorBody("method_not_allowed"))
			return
		}
		report := map[string]any{
			"status": "healthy", "timestamp": validTime,
			"components": map[string]string{"database": "healthy", "redis": "disabled", "encryption": "healthy", "ca": "healthy"},
		}
		status := http.StatusOK
		switch r.URL.Query().Get("wrong") {
		case "field":
			report["uptime"] = 12
		case "status":
			status = http.StatusTeapot
		case "unhealthy200":
			report["status"] = "unhealthy"
		case "time":
			report["timestamp"] = "yesterday"
		}
		body, _ := json.Marshal(report)
		writeJSON(w, status, string(body))
	})
	mux.HandleFunc("POST /internal/messages/register", func(w http.ResponseWriter, r *http.Request) {
		var req map[string]any
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			code := errorBody("invalid_json")
			if r.URL.Query().Get("wrong") == "code" {
				code = errorBody("bad_json")
			}
			writeJSON(w, http.StatusBadRequest, code)
			return
		}
		writeJSON(w, http.StatusCreated, `{"message_id":"`+messageID+`","status":"queued","queued_at":"`+validTime+`"}`)
	})
	mux.HandleFunc("/internal/messages/register", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", "POST")
		writeJSON(w, http.StatusMethodNotAllowed, errorBody("method_not_allowed"))
	})
	mux.HandleFunc("/internal/", func(w http.ResponseWriter, r *http.Request) {
		code := errorBody("not_found")
		if r.URL.Query().Get("wrong") == "code" {
			code = errorBody("message_not_found")
		}
		writeJSON(w, http.StatusNotFound, code)
	})
	mux.HandleFunc("/undocumented", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, `{}`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestTransportReportsMismatches(t *testing.T) {
	srv := fakeGateway(t)
	rec := &recorder{TB: t}
	client := Client(rec, srv.Client())

	register := func(body string) *http.Request {
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/internal/messages/register", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		return req
	}
	get := func(method, path string) *http.Request {
		req, err := http.NewRequest(method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		return req
	}
	validRegistration := `{"message_id":"` + messageID + `","sender_number":"+4915200000000","message_body":"hi"}`

	cases := []struct {
		name string
		req  *http.Request
		want string // substring of the one expected error; "" for none
	}{
		{"documented answer", get("GET", "/health"), ""},
		{"documented HEAD", get("HEAD", "/health"), ""},
		{"undocumented field", get("GET", "/health?wrong=field"), `property "uptime" is unsupported`},
		{"undocumented status", get("GET", "/health?wrong=status"), "status is not supported"},
		{"status narrowed per answer", get("GET", "/health?wrong=unhealthy200"), "value is not one of the allowed values"},
		{"format checked", get("GET", "/health?wrong=time"), `doesn't match the format "date-time"`},
		{"undocumented route", get("GET", "/undocumented"), "route not in the OpenAPI document"},
		{"405 with the documented Allow", get("DELETE", "/health"), ""},
		{"405 with another Allow", get("DELETE", "/health?wrong=allow"), "Allow lists [GET], the document has [GET HEAD]"},
		{"405 on a POST route", get("GET", "/internal/messages/register"), ""},
		{"404 for an undocumented path", get("GET", "/internal/nothing"), ""},
		{"404 with another code", get("GET", "/internal/nothing?wrong=code"), "value is not one of the allowed values"},
		{"valid request accepted", register(validRegistration), ""},
		{"invalid request accepted", register(`{"sender_number":"0049 152","message_body":"hi"}`), "request does not match the OpenAPI document"},
		{"invalid request accepted, marked", SkipRequestValidation(register(`{"sender_number":"0049 152","message_body":"hi"}`)), ""},
		{"broken request rejected", register(`{"sender_number":`), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := client.Do(tc.req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if len(body) == 0 && tc.req.Method != http.MethodHead {
				t.Error("the caller did not get the response body")
			}
			errs := rec.take()
			switch {
			case tc.want == "" && len(errs) > 0:
				t.Errorf("unexpected report: %q", errs)
			case tc.want != "" && len(errs) != 1:
				t.Errorf("got %d reports %q, want one containing %q", len(errs), errs, tc.want)
			case tc.want != "" && !strings.Contains(errs[0], tc.want):
				t.Errorf("report %q does not contain %q", errs[0], tc.want)
			}
		})
	}

	// An error answer with an undocumented code is caught even though the
	// request (broken on purpose) is not validated.
	req := register(`{"sender_number":`)
	req.URL.RawQuery = "wrong=code"
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if errs := rec.take(); len(errs) != 1 || !strings.Contains(errs[0], `value is not one of the allowed values`) ||
		!strings.Contains(errs[0], "POST /internal/messages/register?wrong=code → 400") {
		t.Errorf("undocumented error code: reports %q", errs)
	}
}

func TestReportNamesTheExchange(t *testing.T) {
	srv := fakeGateway(t)
	rec := &recorder{TB: t}
	resp, err := Client(rec, srv.Client()).Get(srv.URL + "/undocumented")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	errs := rec.take()
	if len(errs) != 1 {
		t.Fatalf("reports %q", errs)
	}
	for _, want := range []string{"GET", "/undocumented", "200", "route not in the OpenAPI document", "answer: {}"} {
		if !strings.Contains(errs[0], want) {
			t.Errorf("report %q does not contain %q", errs[0], want)
		}
	}
}

func TestRequestBodyReachesTheServer(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = string(b)
		writeJSON(w, http.StatusBadRequest, errorBody("invalid_json"))
	}))
	defer srv.Close()
	rec := &recorder{TB: t}
	body := `{"message_body":"x"}`
	resp, err := Client(rec, nil).Post(srv.URL+"/internal/messages/register", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got != body {
		t.Errorf("server got %q, want %q", got, body)
	}
	if errs := rec.take(); len(errs) > 0 {
		t.Errorf("unexpected reports %q", errs)
	}
}

func TestDocument(t *testing.T) {
	doc := Document(t)
	if doc.Paths.Value("/health") == nil {
		t.Fatal("the document has no /health")
	}
	// Each call is a fresh copy.
	doc.Paths.Delete("/health")
	if Document(t).Paths.Value("/health") == nil {
		t.Error("Document returned a shared copy")
	}
}
