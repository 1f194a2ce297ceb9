package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"

	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/internal/testcaddy"
	"github.com/msgbroker/caddy-msgbroker/modules/portal"
)

// rawGet fetches a path of the portal site with the gateway's validating
// client and returns the status, headers and body as they are.
func (p *portalGateway) rawGet(method, path string, header http.Header) (int, http.Header, string) {
	p.t.Helper()
	req, err := http.NewRequest(method, fmt.Sprintf("https://localhost:%d%s", p.port, path), nil)
	if err != nil {
		p.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	client := *p.client
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		p.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(body)
}

// TestPortalPagesAreServedWithTheirHeaders: the page, its assets, the
// redirects to it and a missing asset, each with the page's security
// headers, revalidated by ETag; traffic checked against the OpenAPI
// document by the harness's client.
func TestPortalPagesAreServedWithTheirHeaders(t *testing.T) {
	p := startPortal(t, "sqlite", "")
	status, h, body := p.rawGet("GET", "/portal/app", nil)
	if status != http.StatusOK || h.Get("Content-Type") != "text/html; charset=utf-8" || !strings.Contains(body, `<script src="/portal/assets/app.js" defer></script>`) {
		t.Fatalf("GET /portal/app = %d %q:\n%s", status, h.Get("Content-Type"), body)
	}
	for name, want := range map[string]string{
		"Content-Security-Policy": portal.PageSecurityPolicy,
		"X-Content-Type-Options":  "nosniff",
		"X-Frame-Options":         "DENY",
		"Referrer-Policy":         "no-referrer",
		"Cache-Control":           "no-cache",
	} {
		if got := h.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if !strings.Contains(portal.PageSecurityPolicy, "script-src 'self';") || strings.Contains(portal.PageSecurityPolicy, "unsafe") {
		t.Errorf("the page's policy allows more than its own scripts: %s", portal.PageSecurityPolicy)
	}
	etag := h.Get("ETag")
	if status, _, body := p.rawGet("GET", "/portal/app", http.Header{"If-None-Match": {etag}}); status != http.StatusNotModified || body != "" {
		t.Errorf("revalidating with the ETag = %d %q, want 304", status, body)
	}
	if status, h, body := p.rawGet("HEAD", "/portal/app", nil); status != http.StatusOK || body != "" || h.Get("ETag") != etag {
		t.Errorf("HEAD /portal/app = %d, ETag %q, body %q", status, h.Get("ETag"), body)
	}
	for asset, contentType := range map[string]string{"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8", "favicon.svg": "image/svg+xml"} {
		status, h, body := p.rawGet("GET", "/portal/assets/"+asset, nil)
		if status != http.StatusOK || h.Get("Content-Type") != contentType || len(body) < 200 || h.Get("Content-Security-Policy") == "" {
			t.Errorf("GET /portal/assets/%s = %d %q (%d bytes)", asset, status, h.Get("Content-Type"), len(body))
		}
	}
	if status, h, _ := p.rawGet("GET", "/portal/assets/app.map", nil); status != http.StatusNotFound || h.Get("Content-Security-Policy") != portal.PageSecurityPolicy {
		t.Errorf("a missing asset = %d (policy %q), want 404 with the page's headers", status, h.Get("Content-Security-Policy"))
	}
	for _, path := range []string{"/portal/"} {
		if status, h, _ := p.rawGet("GET", path, nil); status != http.StatusPermanentRedirect || h.Get("Location") != "/portal/app" {
			t.Errorf("GET %s = %d to %q, want 308 to /portal/app", path, status, h.Get("Location"))
		}
	}
	if status, h, _ := p.rawGet("POST", "/portal/app", nil); status != http.StatusMethodNotAllowed || h.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /portal/app = %d (Allow %q), want 405", status, h.Get("Allow"))
	}
}

// portalBrowser is headless Chromium on the portal page.
type portalBrowser struct {
	t    *testing.T
	ctx  context.Context
	page string
}

func newPortalBrowser(t *testing.T, page string) *portalBrowser {
	t.Helper()
	return &portalBrowser{t: t, ctx: chromiumContext(t, 90*time.Second), page: page}
}

// do runs actions, failing the test with what the page shows.
func (b *portalBrowser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		shown, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body.innerText`))
		b.t.Fatalf("%s: %v\nthe page shows:\n%s", what, err, shown)
	}
}

func (b *portalBrowser) eval(js string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](js))
	if err != nil {
		b.t.Fatalf("%s: %v", js, err)
	}
	return v
}

// until waits for js to be true. It evaluates again and again rather than
// with chromedp.Poll, whose evaluation fails outright when a navigation
// replaces the page's script context under it ("Cannot find context").
func (b *portalBrowser) until(js string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, target *chromedp.Target) (chromedp.Void, error) {
		deadline := time.Now().Add(15 * time.Second)
		var last error
		for time.Now().Before(deadline) {
			ok, err := chromedp.Evaluate[bool](js)(ctx, target)
			if err == nil && ok {
				return chromedp.Void{}, nil
			}
			last = err
			select {
			case <-ctx.Done():
				return chromedp.Void{}, ctx.Err()
			case <-time.After(25 * time.Millisecond):
			}
		}
		return chromedp.Void{}, fmt.Errorf("%s was not true within 15 s (last error: %v)", js, last)
	}
}

func (b *portalBrowser) login(email, password string) {
	b.t.Helper()
	b.do("logging in as "+email,
		chromedp.WaitVisible(chromedp.CSS("#login-form")),
		chromedp.SetValue(chromedp.CSS("#login-email"), email),
		chromedp.SetValue(chromedp.CSS("#login-password"), password),
		chromedp.Click(chromedp.CSS("#login-submit")),
	)
}

const rowsJS = `String(document.querySelectorAll("#messages tbody tr").length)`

// TestPortalPageInABrowser drives the web portal in Debian's headless
// Chromium as an admin and as a user: a refused login, the list and its
// filter, a message whose body is markup (shown as text, never run), the
// password change, a page reload that stays logged in through the
// refresh cookie, and the logout that ends it.
func TestPortalPageInABrowser(t *testing.T) {
	port := testcaddy.FreePort(t)
	site := fmt.Sprintf("http://127.0.0.1:%d {\n\thandle /portal* {\n\t\tmsgbroker_portal\n\t}\n\trespond 404\n}\n", port)
	options := "\n\t\tlogin {\n\t\t\tbcrypt_cost 4\n\t\t\tfailure_delay off\n\t\t}"
	g := startConfigured(t, &gateway{sites: site}, databaseConfig(t, "sqlite"), options)
	p := &portalGateway{gateway: g, port: port, client: g.client(nil)}
	p.createUser("admin@example.com", "admin", "")
	p.createUser("ops@example.com", "user", "proxy-a")
	own := p.register("proxy-a", 3)
	p.register("proxy-b", 52) // more than a page of 50
	const markup = `<img src=x onerror="window.pwned=1"><script>window.pwned=2</script> & "quotes"`
	xss := uuid.NewString()
	if _, err := p.services().Messages.Register(context.Background(), "proxy-b", broker.RegisterRequest{
		MessageID: xss, SenderNumber: "+4915200000000", MessageBody: markup, Metadata: json.RawMessage(`{"note":"<b>bold</b>"}`),
	}); err != nil {
		t.Fatal(err)
	}

	b := newPortalBrowser(t, fmt.Sprintf("http://127.0.0.1:%d/portal", port))
	b.do("opening the page (/portal redirects to /portal/app)", chromedp.Navigate(b.page), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	if got := b.eval(`location.pathname`); got != "/portal/app" {
		t.Errorf("the page is at %s, want /portal/app", got)
	}

	b.login("admin@example.com", "not the password")
	b.do("a refused login", b.until(`!document.getElementById("error").hidden`))
	if got := b.eval(`document.getElementById("error").textContent`); got != "the email or password is wrong" {
		t.Errorf("refused login shows %q", got)
	}

	b.login("admin@example.com", portalPassword)
	b.do("the admin's first page", b.until(rowsJS+` === "50"`), chromedp.WaitVisible(chromedp.CSS("#more")))
	// More goes on with the filter its cursor was made for, even when the
	// form was changed meanwhile, and a double click adds the page once.
	b.do("the next page", chromedp.SetValue(chromedp.CSS("#filter-q"), "ffff"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("more").click(); document.getElementById("more").click()`),
		b.until(rowsJS+` === "56"`), b.until(`document.getElementById("more").hidden`))
	time.Sleep(200 * time.Millisecond)
	if got := b.eval(rowsJS + ` + "/" + document.getElementById("error").hidden`); got != "56/true" {
		t.Errorf("after More twice: rows/no error = %s, want 56/true", got)
	}
	// Requests that find the access token expired at once share one
	// refresh: a second use of the spent refresh token would end the
	// session.
	concurrent, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`accessToken = "expired"; Promise.all([
		call("GET", "/portal/profile"), call("GET", "/portal/profile"), call("GET", "/portal/messages?limit=1")
	]).then(() => call("GET", "/portal/profile")).then(() => "ok", (e) => "failed: " + e.message)`, chromedp.EvalAwaitPromise))
	if err != nil || concurrent != "ok" {
		t.Errorf("three requests with an expired token at once: %q, %v", concurrent, err)
	}
	b.do("back to the whole list", chromedp.Evaluate[chromedp.Void](`document.getElementById("filter-q").value = ""`),
		chromedp.Click(chromedp.CSS("#filter-form button")), b.until(rowsJS+` === "50"`))
	if got := b.eval(`document.getElementById("who").textContent`); got != "admin@example.com (admin)" {
		t.Errorf("signed in as %q", got)
	}
	b.do("filtering by id", chromedp.SetValue(chromedp.CSS("#filter-q"), own[1][:13]),
		chromedp.Click(chromedp.CSS("#filter-form button")), b.until(rowsJS+` === "1"`))
	if got := b.eval(`document.querySelector("#messages tbody a").textContent`); got != own[1] {
		t.Errorf("the filter kept %q, want %s", got, own[1])
	}

	b.do("a message whose body is markup",
		chromedp.Evaluate[chromedp.Void](`location.hash = "#/messages/`+xss+`"`),
		chromedp.WaitVisible(chromedp.CSS("#m-decrypt")),
		chromedp.Click(chromedp.CSS("#m-decrypt")),
		b.until(`!document.getElementById("m-body").hidden`))
	if got := b.eval(`document.getElementById("m-body").textContent`); got != markup {
		t.Errorf("the body shows as %q, want the text %q", got, markup)
	}
	if got := b.eval(`String(document.querySelectorAll("#m-body *, #m-fields img, #m-fields b").length) + "/" + String(window.pwned)`); got != "0/undefined" {
		t.Errorf("markup from the message became elements or ran: %s", got)
	}

	b.do("changing the password",
		chromedp.Evaluate[chromedp.Void](`location.hash = "#/profile"`),
		chromedp.WaitVisible(chromedp.CSS("#password-form")),
		chromedp.SetValue(chromedp.CSS("#pw-current"), portalPassword),
		chromedp.SetValue(chromedp.CSS("#pw-new"), "a new password of mine"),
		chromedp.Click(chromedp.CSS("#pw-submit")),
		b.until(`!document.getElementById("pw-done").hidden`))

	// A new load of the page (not a fragment change, which keeps it).
	b.do("opening the page again stays signed in", chromedp.Navigate("about:blank"), chromedp.Navigate(b.page+"/app"), b.until(rowsJS+` === "50"`))
	b.do("a message shown before logging out", chromedp.Evaluate[chromedp.Void](`location.hash = "#/messages/`+xss+`"`),
		chromedp.WaitVisible(chromedp.CSS("#m-decrypt")), chromedp.Click(chromedp.CSS("#m-decrypt")), b.until(`!document.getElementById("m-body").hidden`))
	b.do("logging out", chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	if got := b.eval(`[` + rowsJS + `, document.getElementById("m-body").textContent, document.getElementById("m-fields").textContent, document.getElementById("who").textContent].join("|")`); got != "0|||" {
		t.Errorf("after logging out the page still holds %q", got)
	}
	b.do("opening the page after the logout asks to log in", chromedp.Navigate("about:blank"), chromedp.Navigate(b.page+"/app"), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	if got := b.eval(`String(document.getElementById("messages-view").hidden)`); got != "true" {
		t.Error("the list shows after the logout")
	}

	// A user sees their client's messages only, and no body.
	b.login("ops@example.com", portalPassword)
	b.do("the user's list", b.until(rowsJS+` === "3"`))
	if got := b.eval(`[...document.querySelectorAll("#messages tbody tr td:nth-child(3)")].map(td => td.textContent).join()`); got != "proxy-a,proxy-a,proxy-a" {
		t.Errorf("the user sees clients %s", got)
	}
	b.do("a user's message",
		chromedp.Evaluate[chromedp.Void](`location.hash = "#/messages/`+own[0]+`"`),
		b.until(`document.getElementById("m-fields").textContent.includes("proxy-a")`))
	if got := b.eval(`String(document.getElementById("m-decrypt").hidden)`); got != "true" {
		t.Error("a user is offered the body")
	}
}
