package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/internal/testcaddy"
)

// portalGateway is a gateway that also serves the portal API over TLS
// (Caddy's local CA), as the production example does.
type portalGateway struct {
	*gateway
	port   int
	client *http.Client
}

const portalPassword = "correct horse battery"

// startPortal starts a gateway on dialect with the portal on its own
// HTTPS site. login and tokens are the msgbroker option's blocks; the
// cheapest bcrypt cost and no failure delay keep the tests fast unless
// login says otherwise.
func startPortal(t *testing.T, dialect, options string) *portalGateway {
	t.Helper()
	if !strings.Contains(options, "login {") {
		options += "\n\t\tlogin {\n\t\t\tbcrypt_cost 4\n\t\t\tfailure_delay off\n\t\t}"
	}
	port := testcaddy.FreePort(t)
	site := fmt.Sprintf("https://localhost:%d {\n\ttls internal\n\tmsgbroker_portal\n\trespond 404\n}\n", port)
	g := startConfigured(t, &gateway{sites: site}, databaseConfig(t, dialect), options)
	return &portalGateway{gateway: g, port: port, client: g.client(nil)}
}

func eachPortalDialect(t *testing.T, options string, fn func(t *testing.T, p *portalGateway)) {
	for _, dialect := range []string{"sqlite", "mysql"} {
		t.Run(dialect, func(t *testing.T) { fn(t, startPortal(t, dialect, options)) })
	}
}

// portalCall is one request to the portal.
type portalCall struct {
	method, path string
	body         any
	token        string
	header       http.Header
	cookies      []*http.Cookie
}

type portalAnswer struct {
	response
	Header  http.Header
	Cookies []*http.Cookie
}

func (p *portalGateway) do(c portalCall) portalAnswer {
	p.t.Helper()
	var body io.Reader
	switch b := c.body.(type) {
	case nil:
	case string:
		body = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			p.t.Fatal(err)
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequest(c.method, fmt.Sprintf("https://localhost:%d%s", p.port, c.path), body)
	if err != nil {
		p.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for _, ck := range c.cookies {
		req.AddCookie(ck)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", c.method, c.path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		p.t.Fatal(err)
	}
	out := portalAnswer{response: response{Status: resp.StatusCode, Raw: raw}, Header: resp.Header, Cookies: resp.Cookies()}
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &out.Body); err != nil {
			p.t.Fatalf("%s %s answered non-JSON (%d): %s", c.method, c.path, resp.StatusCode, raw)
		}
	}
	return out
}

// want fails the test unless the answer has status and, for errors, code.
func (a portalAnswer) want(t *testing.T, status int, code string) portalAnswer {
	t.Helper()
	if a.Status != status || a.errorCode() != code {
		t.Fatalf("answer %d %q, want %d %q: %s", a.Status, a.errorCode(), status, code, a.Raw)
	}
	return a
}

func (a portalAnswer) str(key string) string {
	s, _ := a.Body[key].(string)
	return s
}

// createUser makes an account through the broker's users service.
func (p *portalGateway) createUser(email, role, client string) {
	p.t.Helper()
	_, err := p.services().Users.Create(context.Background(), adminActor,
		broker.NewUser{Email: email, Password: portalPassword, Role: role, ClientID: client})
	if err != nil {
		p.t.Fatalf("creating %s: %v", email, err)
	}
}

// login logs email in and returns the answer's tokens.
func (p *portalGateway) login(email string) (access, refresh string) {
	p.t.Helper()
	a := p.do(portalCall{method: "POST", path: "/portal/auth/login", body: map[string]any{"email": email, "password": portalPassword}})
	a.want(p.t, http.StatusOK, "")
	return a.str("access_token"), a.str("refresh_token")
}

// register stores messages for client through the broker's one
// registration path, with bodies "body <n>".
func (p *portalGateway) register(client string, n int) []string {
	p.t.Helper()
	var ids []string
	for i := range n {
		id := uuid.NewString()
		req := broker.RegisterRequest{MessageID: id, SenderNumber: "+4915200000000", MessageBody: fmt.Sprintf("body %d", i),
			Metadata: json.RawMessage(`{"campaign":"it"}`)}
		if _, err := p.services().Messages.Register(context.Background(), client, req); err != nil {
			p.t.Fatalf("registering for %s: %v", client, err)
		}
		ids = append(ids, id)
	}
	return ids
}
