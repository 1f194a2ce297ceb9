package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/internal/clientca"
)

func registerBody(id, number, body string) map[string]any {
	return map[string]any{"message_id": id, "sender_number": number, "message_body": body}
}

func TestInternalMessageLifecycle(t *testing.T) {
	eachDialect(t, func(t *testing.T, g *gateway) {
		proxyCert, _ := g.issue("proxy-a", "proxy")
		workerCert, _ := g.issue("worker-a", "worker")
		proxy, worker := g.client(&proxyCert), g.client(&workerCert)
		registered := `msgbroker_messages_registered_total{client_id="proxy-a"}`
		deliveredSeries := `msgbroker_messages_delivered_total{client_id="proxy-a"}`
		registeredBefore, deliveredBefore := g.metric(registered), g.metric(deliveredSeries)

		id := uuid.NewString()
		reg := g.call(proxy, "POST", "/internal/messages/register", map[string]any{
			"message_id": id, "sender_number": "+4915200000000", "message_body": "hello", "metadata": map[string]any{"b": 1, "a": "x"},
		})
		if reg.Status != http.StatusCreated || reg.Body["message_id"] != id || reg.Body["status"] != "queued" || reg.Body["queued_at"] == nil {
			t.Fatalf("register = %d %s", reg.Status, reg.Raw)
		}
		// Same payload, keys in another order: the original answer.
		again := g.call(proxy, "POST", "/internal/messages/register", map[string]any{
			"message_id": id, "sender_number": "+4915200000000", "message_body": "hello", "metadata": map[string]any{"a": "x", "b": 1},
		})
		if again.Status != http.StatusOK || again.Body["queued_at"] != reg.Body["queued_at"] {
			t.Fatalf("repeated register = %d %s, want 200 with the original answer %s", again.Status, again.Raw, reg.Raw)
		}
		conflict := g.call(proxy, "POST", "/internal/messages/register", registerBody(id, "+4915200000000", "changed"))
		if conflict.Status != http.StatusConflict || conflict.errorCode() != "message_id_conflict" {
			t.Fatalf("conflicting register = %d %s", conflict.Status, conflict.Raw)
		}

		steps := []struct {
			status       string
			wantAttempts float64
		}{{"processing", 0}, {"retrying", 1}, {"processing", 1}, {"retrying", 2}, {"processing", 2}}
		for _, step := range steps {
			r := g.call(worker, "PUT", "/internal/messages/"+id+"/status", map[string]any{"status": step.status, "error": "smsc timeout"})
			if r.Status != http.StatusOK || r.Body["status"] != step.status || r.Body["attempts"] != step.wantAttempts || r.Body["changed"] != true {
				t.Fatalf("status %s = %d %s", step.status, r.Status, r.Raw)
			}
		}
		if r := g.call(worker, "PUT", "/internal/messages/"+id+"/status", map[string]any{"status": "processing"}); r.Body["last_error"] != "smsc timeout" {
			t.Errorf("last_error not kept: %s", r.Raw)
		}
		delivered := g.call(worker, "POST", "/internal/messages/deliver", map[string]any{"message_id": id})
		if delivered.Status != http.StatusOK || delivered.Body["status"] != "delivered" || delivered.Body["delivered_at"] == nil {
			t.Fatalf("deliver = %d %s", delivered.Status, delivered.Raw)
		}
		if r := g.call(worker, "POST", "/internal/messages/deliver", map[string]any{"message_id": id}); r.Status != http.StatusOK || r.Body["delivered_at"] != delivered.Body["delivered_at"] || r.Body["changed"] != false {
			t.Fatalf("repeated deliver = %d %s, want the same answer", r.Status, r.Raw)
		}
		if r := g.call(worker, "PUT", "/internal/messages/"+id+"/status", map[string]any{"status": "processing"}); r.Status != http.StatusConflict || r.errorCode() != "illegal_transition" {
			t.Fatalf("delivered → processing = %d %s, want 409", r.Status, r.Raw)
		}
		// One registration and one delivery, however often they were repeated.
		if got := g.metric(registered) - registeredBefore; got != 1 {
			t.Errorf("%s grew by %v, want 1", registered, got)
		}
		if got := g.metric(deliveredSeries) - deliveredBefore; got != 1 {
			t.Errorf("%s grew by %v, want 1", deliveredSeries, got)
		}
		if g.metric(`msgbroker_requests_total{endpoint="internal_register",method="POST",status="409"}`) < 1 {
			t.Error("the conflicting registration is not counted in msgbroker_requests_total")
		}

		// The stored row: body encrypted, number hashed and masked.
		store := g.services().Store
		row, err := store.Messages.GetByMessageID(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if row.ClientID != "proxy-a" || row.SenderNumberMasked != "+4915****0000" || strings.Contains(string(row.BodyEncrypted), "hello") ||
			row.SenderNumberHash == "" || strings.Contains(row.SenderNumberHash, "4915200000000") {
			t.Errorf("stored row not protected: %+v", row)
		}
		body, err := g.services().Keyring().Decrypt(row.BodyEncrypted, []byte(id))
		if err != nil || string(body) != "hello" {
			t.Errorf("stored body decrypts to %q, %v", body, err)
		}
	})
}

func TestInternalMessageFails(t *testing.T) {
	eachDialect(t, func(t *testing.T, g *gateway) {
		proxyCert, _ := g.issue("proxy-f", "proxy")
		workerCert, _ := g.issue("worker-f", "worker")
		proxy, worker := g.client(&proxyCert), g.client(&workerCert)
		reg := g.call(proxy, "POST", "/internal/messages/register", map[string]any{"sender_number": "+12025550123", "message_body": "x"})
		if reg.Status != http.StatusCreated {
			t.Fatalf("register without id = %d %s", reg.Status, reg.Raw)
		}
		id, _ := reg.Body["message_id"].(string)
		if _, err := uuid.Parse(id); err != nil {
			t.Fatalf("generated message_id %q is not a UUID", id)
		}
		for _, status := range []string{"processing", "failed"} {
			if r := g.call(worker, "PUT", "/internal/messages/"+id+"/status", map[string]any{"status": status, "error": "number unreachable", "reason": "unreachable"}); r.Status != http.StatusOK {
				t.Fatalf("→ %s = %d %s", status, r.Status, r.Raw)
			}
		}
		if r := g.call(worker, "POST", "/internal/messages/deliver", map[string]any{"message_id": id}); r.Status != http.StatusConflict {
			t.Fatalf("failed → delivered = %d %s, want 409", r.Status, r.Raw)
		}
		// Failing again with another error changes nothing, and says so.
		again := g.call(worker, "PUT", "/internal/messages/"+id+"/status", map[string]any{"status": "failed", "error": "another cause"})
		if again.Status != http.StatusOK || again.Body["changed"] != false || again.Body["last_error"] != "number unreachable" {
			t.Fatalf("repeated failed = %d %s, want 200, changed false and the first error", again.Status, again.Raw)
		}
		if g.metric(`msgbroker_messages_failed_total{client_id="proxy-f",reason="unreachable"}`) < 1 {
			t.Error("the failure is not counted in msgbroker_messages_failed_total")
		}
	})
}

func TestInternalRejectsBadRequests(t *testing.T) {
	eachDialect(t, func(t *testing.T, g *gateway) {
		proxyCert, _ := g.issue("proxy-b", "proxy")
		workerCert, _ := g.issue("worker-b", "worker")
		proxy, worker := g.client(&proxyCert), g.client(&workerCert)
		known := g.call(proxy, "POST", "/internal/messages/register", registerBody(uuid.NewString(), "+4915200000001", "x"))
		knownID, _ := known.Body["message_id"].(string)

		cases := []struct {
			name       string
			client     *http.Client
			method     string
			path       string
			body       any
			wantStatus int
			wantCode   string
		}{
			{"malformed JSON", proxy, "POST", "/internal/messages/register", `{"sender_number": `, 400, "invalid_json"},
			{"not an object", proxy, "POST", "/internal/messages/register", `["x"]`, 400, "invalid_json"},
			{"empty body", proxy, "POST", "/internal/messages/register", ``, 400, "invalid_json"},
			{"trailing data", proxy, "POST", "/internal/messages/register", `{"sender_number":"+4915200000000","message_body":"x"} {}`, 400, "invalid_json"},
			{"number of wrong type", proxy, "POST", "/internal/messages/register", `{"sender_number": 4915200000000, "message_body": "x"}`, 400, "invalid_field_type"},
			{"body of wrong type", proxy, "POST", "/internal/messages/register", `{"sender_number": "+4915200000000", "message_body": ["x"]}`, 400, "invalid_field_type"},
			{"metadata not an object", proxy, "POST", "/internal/messages/register", `{"sender_number": "+4915200000000", "message_body": "x", "metadata": [1]}`, 400, "invalid_metadata"},
			{"bad number", proxy, "POST", "/internal/messages/register", registerBody("", "004915200000000", "x"), 400, "invalid_sender_number"},
			{"missing number", proxy, "POST", "/internal/messages/register", map[string]any{"message_body": "x"}, 400, "missing_sender_number"},
			{"missing body", proxy, "POST", "/internal/messages/register", map[string]any{"sender_number": "+4915200000000"}, 400, "missing_message_body"},
			{"bad message id", proxy, "POST", "/internal/messages/register", registerBody("msg-123", "+4915200000000", "x"), 400, "invalid_message_id"},
			{"body too long", proxy, "POST", "/internal/messages/register", registerBody("", "+4915200000000", strings.Repeat("é", 4097)), 400, "message_body_too_long"},
			{"request too large", proxy, "POST", "/internal/messages/register", registerBody("", "+4915200000000", strings.Repeat("x", 70<<10)), 413, "request_too_large"},
			{"worker registers", worker, "POST", "/internal/messages/register", registerBody("", "+4915200000000", "x"), 403, "wrong_role"},
			{"proxy delivers", proxy, "POST", "/internal/messages/deliver", map[string]any{"message_id": knownID}, 403, "wrong_role"},
			{"proxy updates status", proxy, "PUT", "/internal/messages/" + knownID + "/status", map[string]any{"status": "processing"}, 403, "wrong_role"},
			{"unknown id", worker, "PUT", "/internal/messages/" + uuid.NewString() + "/status", map[string]any{"status": "processing"}, 404, "message_not_found"},
			{"deliver unknown id", worker, "POST", "/internal/messages/deliver", map[string]any{"message_id": uuid.NewString()}, 404, "message_not_found"},
			{"id not a uuid", worker, "PUT", "/internal/messages/abc/status", map[string]any{"status": "processing"}, 400, "invalid_message_id"},
			{"bad status", worker, "PUT", "/internal/messages/" + knownID + "/status", map[string]any{"status": "sent"}, 400, "invalid_status"},
			{"illegal transition", worker, "PUT", "/internal/messages/" + knownID + "/status", map[string]any{"status": "retrying"}, 409, "illegal_transition"},
			{"bad reason", worker, "PUT", "/internal/messages/" + knownID + "/status", map[string]any{"status": "processing", "reason": "Not A Code"}, 400, "invalid_reason"},
			{"invalid UTF-8", proxy, "POST", "/internal/messages/register", "{\"sender_number\":\"+4915200000000\",\"message_body\":\"caf\xe9\"}", 400, "invalid_utf8"},
			{"lone surrogate", proxy, "POST", "/internal/messages/register", `{"sender_number":"+4915200000000","message_body":"\ud800"}`, 400, "lone_surrogate"},
			{"duplicate key", proxy, "POST", "/internal/messages/register", `{"sender_number":"+4915200000000","message_body":"a","message_body":"b"}`, 400, "duplicate_key"},
			{"key in upper case", proxy, "POST", "/internal/messages/register", `{"sender_number":"+4915200000000","MESSAGE_BODY":"x"}`, 400, "unknown_field"},
			{"unknown key", proxy, "POST", "/internal/messages/register", `{"sender_number":"+4915200000000","message_body":"x","priority":1}`, 400, "unknown_field"},
			{"metadata too deep", proxy, "POST", "/internal/messages/register", `{"sender_number":"+4915200000000","message_body":"x","metadata":` + strings.Repeat(`{"a":`, broker.MaxMetadataDepth+1) + "1" + strings.Repeat("}", broker.MaxMetadataDepth+1) + `}`, 400, "invalid_metadata"},
			{"NUL in the body", proxy, "POST", "/internal/messages/register", registerBody("", "+4915200000000", "a\x00b"), 400, "control_character"},
			{"NUL in metadata", proxy, "POST", "/internal/messages/register", map[string]any{"sender_number": "+4915200000000", "message_body": "x", "metadata": map[string]any{"k": "a\x00"}}, 400, "control_character"},
			{"NUL in a status error", worker, "PUT", "/internal/messages/" + knownID + "/status", map[string]any{"status": "processing", "error": "smsc\x00down"}, 400, "control_character"},
			// failed stores its error: the case that once gave SQLite a 500
			// and lost the NUL on MariaDB.
			{"NUL in a stored failure error", worker, "PUT", "/internal/messages/" + knownID + "/status", map[string]any{"status": "failed", "error": "smsc\x00down"}, 400, "control_character"},
			{"DEL in a stored failure error", worker, "PUT", "/internal/messages/" + knownID + "/status", map[string]any{"status": "failed", "error": "smsc\x7fdown"}, 400, "control_character"},
			{"unknown key in a status", worker, "PUT", "/internal/messages/" + knownID + "/status", `{"status":"processing","Reason":"x"}`, 400, "unknown_field"},
			{"duplicate key in a delivery", worker, "POST", "/internal/messages/deliver", `{"message_id":"` + knownID + `","message_id":"` + knownID + `"}`, 400, "duplicate_key"},
			{"wrong method", proxy, "GET", "/internal/messages/register", nil, 405, "method_not_allowed"},
			{"unknown endpoint", proxy, "POST", "/internal/messages/purge", map[string]any{}, 404, "not_found"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := g.call(tc.client, tc.method, tc.path, tc.body)
				if r.Status != tc.wantStatus || r.errorCode() != tc.wantCode {
					t.Fatalf("= %d %s, want %d %s", r.Status, r.Raw, tc.wantStatus, tc.wantCode)
				}
				if msg, _ := r.Body["error"].(map[string]any)["message"].(string); msg == "" {
					t.Errorf("error without a message: %s", r.Raw)
				}
			})
		}
	})
}

// TestInternalRefusesBodiesThatAreNotJSON: only application/json (with an
// optional charset=utf-8) is read; a form post or a body without a type is
// a 415 before anything is parsed.
func TestInternalRefusesBodiesThatAreNotJSON(t *testing.T) {
	g := startGateway(t, "sqlite", "")
	proxyCert, _ := g.issue("proxy-t", "proxy")
	workerCert, _ := g.issue("worker-t", "worker")
	proxy, worker := g.client(&proxyCert), g.client(&workerCert)
	body := `{"sender_number":"+4915200000000","message_body":"x"}`
	post := func(c *http.Client, method, path, contentType, body string) response {
		t.Helper()
		req, err := http.NewRequest(method, g.url(path), strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		out := response{Status: resp.StatusCode, Raw: raw}
		_ = json.Unmarshal(raw, &out.Body)
		return out
	}
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "application/json; charset=iso-8859-1", "application/jsonp"} {
		if r := post(proxy, "POST", "/internal/messages/register", ct, body); r.Status != http.StatusUnsupportedMediaType || r.errorCode() != "unsupported_media_type" {
			t.Errorf("register as %q = %d %s, want 415 unsupported_media_type", ct, r.Status, r.Raw)
		}
	}
	if r := post(worker, "POST", "/internal/messages/deliver", "text/plain", `{"message_id":"`+uuid.NewString()+`"}`); r.Status != http.StatusUnsupportedMediaType {
		t.Errorf("deliver as text/plain = %d %s, want 415", r.Status, r.Raw)
	}
	if r := post(worker, "PUT", "/internal/messages/"+uuid.NewString()+"/status", "text/plain", `{"status":"processing"}`); r.Status != http.StatusUnsupportedMediaType {
		t.Errorf("status as text/plain = %d %s, want 415", r.Status, r.Raw)
	}
	if r := post(proxy, "POST", "/internal/messages/register", "application/json; charset=UTF-8", body); r.Status != http.StatusCreated {
		t.Errorf("register as application/json; charset=UTF-8 = %d %s, want 201", r.Status, r.Raw)
	}
}

// handshakeRefused asserts that the server ends the TLS handshake of a
// client presenting cert with an alert, before any HTTP is read. In TLS 1.3
// the client learns of the refusal on its first read.
func handshakeRefused(t *testing.T, g *gateway, cert *tls.Certificate, why string) {
	t.Helper()
	cfg := g.tlsConfig(cert)
	cfg.NextProtos = []string{"http/1.1"}
	conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", g.mtlsPort), cfg)
	if err == nil {
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = fmt.Fprintf(conn, "GET /internal/messages/register HTTP/1.1\r\nHost: localhost\r\n\r\n")
		_, err = conn.Read(make([]byte, 1))
	}
	if err == nil {
		t.Fatalf("%s: the server answered", why)
	}
	if !strings.Contains(err.Error(), "remote error: tls") {
		t.Fatalf("%s: failed, but not with a TLS alert: %v", why, err)
	}
}

func TestInternalHandshakeRefusals(t *testing.T) {
	eachDialect(t, func(t *testing.T, g *gateway) {
		t.Run("no certificate", func(t *testing.T) {
			handshakeRefused(t, g, nil, "no certificate")
		})
		t.Run("certificate from another CA", func(t *testing.T) {
			foreign := selfSignedClient(t, "proxy-x")
			handshakeRefused(t, g, &foreign, "foreign CA")
		})
		t.Run("unknown serial from our CA", func(t *testing.T) {
			issuer, err := clientca.New(clientca.Config{CAID: "local", Storage: g.services().CertStorage})
			if err != nil {
				t.Fatal(err)
			}
			issued, err := issuer.Issue(context.Background(), clientca.Request{ClientID: "proxy-ghost", Role: "proxy"})
			if err != nil {
				t.Fatal(err)
			}
			pair, err := tls.X509KeyPair(issued.ChainPEM, issued.PrivateKeyPEM)
			if err != nil {
				t.Fatal(err)
			}
			handshakeRefused(t, g, &pair, "unregistered certificate")
		})
		t.Run("revoked", func(t *testing.T) {
			cert, serial := g.issue("proxy-r", "proxy")
			kept := g.client(&cert)
			if r := g.call(kept, "POST", "/internal/messages/register", registerBody("", "+4915200000002", "before")); r.Status != http.StatusCreated {
				t.Fatalf("before revocation = %d %s", r.Status, r.Raw)
			}
			certs := g.services().Certificates
			revokedBefore := g.metric("msgbroker_certificates_revoked_total")
			// Revoke by the serial as `openssl x509 -serial` prints it.
			if _, err := certs.Revoke(context.Background(), adminActor, openSSLSerial(serial), "compromised"); err != nil {
				t.Fatal(err)
			}
			if got := g.metric("msgbroker_certificates_revoked_total") - revokedBefore; got != 1 {
				t.Errorf("msgbroker_certificates_revoked_total grew by %v, want 1", got)
			}
			handshakeRefused(t, g, &cert, "revoked certificate")
			// A connection opened before the revocation is refused too.
			if r := g.call(kept, "POST", "/internal/messages/register", registerBody("", "+4915200000002", "after")); r.Status != http.StatusForbidden || r.errorCode() != "certificate_revoked" {
				t.Fatalf("kept-alive connection after revocation = %d %s", r.Status, r.Raw)
			}
		})
	})
}

// TestConcurrentStatusUpdatesLoseNothing races workers reporting retries
// on one message: every accepted retry must be counted.
func TestConcurrentStatusUpdatesLoseNothing(t *testing.T) {
	eachDialect(t, func(t *testing.T, g *gateway) {
		proxyCert, _ := g.issue("proxy-c", "proxy")
		workerCert, _ := g.issue("worker-c", "worker")
		proxy := g.client(&proxyCert)
		id := uuid.NewString()
		g.call(proxy, "POST", "/internal/messages/register", registerBody(id, "+4915200000003", "race"))
		g.call(g.client(&workerCert), "PUT", "/internal/messages/"+id+"/status", map[string]any{"status": "processing"})

		const workers = 16
		var wg sync.WaitGroup
		var mu sync.Mutex
		accepted := 0
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := g.client(&workerCert)
				r, err := g.send(c, "PUT", "/internal/messages/"+id+"/status", map[string]any{"status": "retrying"})
				if err != nil {
					t.Error(err)
					return
				}
				switch r.Status {
				case http.StatusOK:
					mu.Lock()
					accepted++
					mu.Unlock()
				case http.StatusConflict:
				default:
					t.Errorf("concurrent retry = %d %s", r.Status, r.Raw)
				}
			}()
		}
		wg.Wait()
		store := g.services().Store
		row, err := store.Messages.GetByMessageID(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if accepted == 0 || row.Attempts != accepted {
			t.Fatalf("attempts = %d, accepted retries = %d: an update was lost", row.Attempts, accepted)
		}
	})
}

func selfSignedClient(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn, OrganizationalUnit: []string{"proxy"}},
		NotBefore:    time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		KeyUsage:    x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// openSSLSerial writes a serial as OpenSSL does: upper case, an even number
// of digits, colon-separated bytes.
func openSSLSerial(serial string) string {
	if len(serial)%2 == 1 {
		serial = "0" + serial
	}
	var parts []string
	for i := 0; i < len(serial); i += 2 {
		parts = append(parts, strings.ToUpper(serial[i:i+2]))
	}
	return strings.Join(parts, ":")
}
