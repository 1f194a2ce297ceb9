package integration

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/msgbroker/caddy-msgbroker/internal/tokens"
	"github.com/msgbroker/caddy-msgbroker/storage"
)

func TestPortalSessionLifecycle(t *testing.T) {
	eachPortalDialect(t, "", func(t *testing.T, p *portalGateway) {
		p.createUser("ann@example.com", storage.RoleUser, "proxy-a")
		p.do(portalCall{method: "POST", path: "/portal/auth/login", body: map[string]any{"email": "ann@example.com", "password": "wrong password"}}).
			want(t, http.StatusUnauthorized, "invalid_credentials")
		p.do(portalCall{method: "POST", path: "/portal/auth/login", body: map[string]any{"email": "nobody@example.com", "password": "wrong password"}}).
			want(t, http.StatusUnauthorized, "invalid_credentials")

		login := p.do(portalCall{method: "POST", path: "/portal/auth/login", body: map[string]any{"email": "ann@example.com", "password": portalPassword}}).
			want(t, http.StatusOK, "")
		if login.str("token_type") != "bearer" || login.Body["expires_in"] != float64(24*3600) {
			t.Fatalf("login answer = %s", login.Raw)
		}
		access, refresh := login.str("access_token"), login.str("refresh_token")

		profile := p.do(portalCall{method: "GET", path: "/portal/profile", token: access}).want(t, http.StatusOK, "")
		if profile.str("email") != "ann@example.com" || profile.str("client_id") != "proxy-a" || profile.str("last_login_at") == "" {
			t.Fatalf("profile = %s", profile.Raw)
		}
		p.do(portalCall{method: "GET", path: "/portal/profile"}).want(t, http.StatusUnauthorized, "token_missing")

		second := p.do(portalCall{method: "POST", path: "/portal/auth/refresh", body: map[string]any{"refresh_token": refresh}}).want(t, http.StatusOK, "")
		p.do(portalCall{method: "POST", path: "/portal/auth/refresh", body: map[string]any{"refresh_token": refresh}}).
			want(t, http.StatusUnauthorized, "token_reused")
		// The reuse killed the whole family, the thief's and the user's copies alike.
		p.do(portalCall{method: "POST", path: "/portal/auth/refresh", body: map[string]any{"refresh_token": second.str("refresh_token")}}).
			want(t, http.StatusUnauthorized, "token_revoked")

		_, other := p.login("ann@example.com")
		if got := p.do(portalCall{method: "POST", path: "/portal/auth/logout", body: map[string]any{"refresh_token": other}}); got.Status != http.StatusNoContent {
			t.Fatalf("logout = %d %s", got.Status, got.Raw)
		}
		p.do(portalCall{method: "POST", path: "/portal/auth/refresh", body: map[string]any{"refresh_token": other}}).
			want(t, http.StatusUnauthorized, "token_revoked")
	})
}

func TestPortalRefusesBadRequestBodies(t *testing.T) {
	p := startPortal(t, "sqlite", "")
	login := func(body string, contentType string) portalAnswer {
		return p.do(portalCall{method: "POST", path: "/portal/auth/login", body: body, header: http.Header{"Content-Type": {contentType}}})
	}
	login(`{"email":"a@example.com","password":"x","admin":true}`, "application/json").want(t, http.StatusBadRequest, "unknown_field")
	login(`{"email":"a@example.com","EMAIL":"b@example.com","password":"x"}`, "application/json").want(t, http.StatusBadRequest, "unknown_field")
	login(`{"email":"a@example.com","email":"b@example.com","password":"x"}`, "application/json").want(t, http.StatusBadRequest, "duplicate_key")
	login("{\"email\":\"a@example.com\",\"password\":\"x\xff\"}", "application/json").want(t, http.StatusBadRequest, "invalid_utf8")
	login(`{"email":"a@example.com"`, "application/json").want(t, http.StatusBadRequest, "invalid_json")
	login(`{"email":"a@example.com","password":"x"}`, "text/plain").want(t, http.StatusUnsupportedMediaType, "unsupported_media_type")
	login(`{"email":"","password":""}`, "application/json").want(t, http.StatusBadRequest, "missing_credentials")
	login(`{"email":"a@example.com","password":"`+strings.Repeat("x", 20000)+`"}`, "application/json").want(t, http.StatusRequestEntityTooLarge, "request_too_large")
	p.do(portalCall{method: "GET", path: "/portal/auth/login"}).want(t, http.StatusMethodNotAllowed, "method_not_allowed")
	p.do(portalCall{method: "GET", path: "/portal/auth/nothing"}).want(t, http.StatusNotFound, "not_found")
}

// forgeToken signs claims of the given type with alg and key, as an
// attacker holding (or guessing) that key would.
func forgeToken(t *testing.T, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPortalRefusesForgedTokensWithTheirCodes(t *testing.T) {
	p := startPortal(t, "sqlite", "")
	p.createUser("ann@example.com", storage.RoleUser, "proxy-a")
	p.createUser("gone@example.com", storage.RoleUser, "proxy-a")
	ctx := context.Background()
	svcs := p.services()
	secret := svcs.JWTKey
	kid := tokens.HMACKey(secret).ID
	goneAccess, _ := p.login("gone@example.com")
	gone, err := svcs.Users.Lookup(ctx, "gone@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if err := svcs.Users.Delete(ctx, adminActor, gone.ID); err != nil {
		t.Fatal(err)
	}
	ann, err := svcs.Users.Lookup(ctx, "ann@example.com")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	claims := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"sub": strconv.FormatInt(ann.ID, 10), "email": ann.Email, "role": "admin", "typ": "access",
			"iss": tokens.DefaultIssuer, "aud": []string{tokens.DefaultAudience}, "jti": "forged",
			"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(), "pws": ann.PasswordChangedAt.UnixMicro()}
		if edit != nil {
			edit(c)
		}
		return c
	}
	unsigned := func(c jwt.MapClaims) string {
		h, _ := json.Marshal(map[string]any{"alg": "none", "kid": kid})
		b, _ := json.Marshal(c)
		return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(b) + "."
	}
	cases := []struct {
		name, token, code string
	}{
		{"alg none", unsigned(claims(nil)), "token_bad_algorithm"},
		{"HS512", forgeToken(t, jwt.SigningMethodHS512, secret, kid, claims(nil)), "token_bad_algorithm"},
		{"another secret", forgeToken(t, jwt.SigningMethodHS256, []byte(strings.Repeat("x", 32)), kid, claims(nil)), "token_bad_signature"},
		{"unknown kid", forgeToken(t, jwt.SigningMethodHS256, secret, "hs-000000000000", claims(nil)), "token_unknown_key"},
		{"wrong audience", forgeToken(t, jwt.SigningMethodHS256, secret, kid, claims(func(c jwt.MapClaims) { c["aud"] = []string{"admin"} })), "token_wrong_audience"},
		{"wrong issuer", forgeToken(t, jwt.SigningMethodHS256, secret, kid, claims(func(c jwt.MapClaims) { c["iss"] = "elsewhere" })), "token_wrong_issuer"},
		{"expired", forgeToken(t, jwt.SigningMethodHS256, secret, kid, claims(func(c jwt.MapClaims) {
			c["iat"], c["nbf"], c["exp"] = now.Add(-48*time.Hour).Unix(), now.Add(-48*time.Hour).Unix(), now.Add(-24*time.Hour).Unix()
		})), "token_expired"},
		{"future nbf", forgeToken(t, jwt.SigningMethodHS256, secret, kid, claims(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() })), "token_not_yet_valid"},
		{"refresh token as access", forgeToken(t, jwt.SigningMethodHS256, secret, kid, claims(func(c jwt.MapClaims) { c["typ"], c["fam"] = "refresh", "f" })), "token_wrong_type"},
		{"old password stamp", forgeToken(t, jwt.SigningMethodHS256, secret, kid, claims(func(c jwt.MapClaims) { c["pws"] = 1 })), "token_superseded"},
		{"deleted user", goneAccess, "token_user_unknown"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := p.do(portalCall{method: "GET", path: "/portal/profile", token: tc.token}).want(t, http.StatusUnauthorized, tc.code)
			if !strings.HasPrefix(a.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("WWW-Authenticate = %q", a.Header.Get("WWW-Authenticate"))
			}
		})
	}
	// The control: the same claims, honestly signed, are accepted.
	p.do(portalCall{method: "GET", path: "/portal/profile", token: forgeToken(t, jwt.SigningMethodHS256, secret, kid, claims(nil))}).want(t, http.StatusOK, "")
}

func TestPortalEdDSARefusesHS256SignedWithThePublicKey(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "jwt.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startPortal(t, "sqlite", "tokens {\n\t\t\talgorithm EdDSA\n\t\t\tsigning_key_file "+keyFile+"\n\t\t\taccess_ttl 1h\n\t\t}")
	p.createUser("ann@example.com", storage.RoleUser, "proxy-a")
	access, _ := p.login("ann@example.com")
	parsed, _, err := jwt.NewParser().ParseUnverified(access, jwt.MapClaims{})
	if err != nil || parsed.Header["alg"] != "EdDSA" {
		t.Fatalf("issued token header = %v (%v), want alg EdDSA", parsed.Header, err)
	}
	p.do(portalCall{method: "GET", path: "/portal/profile", token: access}).want(t, http.StatusOK, "")

	pub := priv.Public().(ed25519.PublicKey)
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(access, claims); err != nil {
		t.Fatal(err)
	}
	claims["role"] = "admin"
	forged := forgeToken(t, jwt.SigningMethodHS256, []byte(pub), parsed.Header["kid"].(string), claims)
	p.do(portalCall{method: "GET", path: "/portal/profile", token: forged}).want(t, http.StatusUnauthorized, "token_bad_algorithm")
}

func TestPortalPasswordChangeEndsOtherSessions(t *testing.T) {
	eachPortalDialect(t, "", func(t *testing.T, p *portalGateway) {
		p.createUser("ann@example.com", storage.RoleUser, "proxy-a")
		laptop, _ := p.login("ann@example.com")
		phone, phoneRefresh := p.login("ann@example.com")
		change := func(token, current string) portalAnswer {
			return p.do(portalCall{method: "PUT", path: "/portal/profile/password", token: token,
				body: map[string]any{"current_password": current, "new_password": "a brand new secret"}})
		}
		change(laptop, "not my password").want(t, http.StatusForbidden, "wrong_password")
		p.do(portalCall{method: "PUT", path: "/portal/profile/password", token: laptop,
			body: map[string]any{"current_password": portalPassword, "new_password": "short"}}).want(t, http.StatusBadRequest, "password_too_short")
		fresh := change(laptop, portalPassword).want(t, http.StatusOK, "")

		p.do(portalCall{method: "GET", path: "/portal/profile", token: phone}).want(t, http.StatusUnauthorized, "token_superseded")
		p.do(portalCall{method: "GET", path: "/portal/profile", token: laptop}).want(t, http.StatusUnauthorized, "token_superseded")
		p.do(portalCall{method: "POST", path: "/portal/auth/refresh", body: map[string]any{"refresh_token": phoneRefresh}}).
			want(t, http.StatusUnauthorized, "token_revoked")
		p.do(portalCall{method: "GET", path: "/portal/profile", token: fresh.str("access_token")}).want(t, http.StatusOK, "")
		p.do(portalCall{method: "POST", path: "/portal/auth/login", body: map[string]any{"email": "ann@example.com", "password": "a brand new secret"}}).
			want(t, http.StatusOK, "")
	})
}

func TestPortalLockoutAnswers429UntilItEnds(t *testing.T) {
	p := startPortal(t, "sqlite", "login {\n\t\t\tbcrypt_cost 4\n\t\t\tmax_failures 2\n\t\t\tlockout 2s\n\t\t\tfailure_delay 300ms\n\t\t}")
	p.createUser("ann@example.com", storage.RoleUser, "proxy-a")
	wrong := map[string]any{"email": "ann@example.com", "password": "not the password"}
	for range 2 {
		// Each failure is answered no sooner than failure_delay after it
		// was sent (the bcrypt at cost 4 takes about a millisecond).
		sent := time.Now()
		p.do(portalCall{method: "POST", path: "/portal/auth/login", body: wrong}).want(t, http.StatusUnauthorized, "invalid_credentials")
		if took := time.Since(sent); took < 300*time.Millisecond {
			t.Fatalf("a wrong password was answered after %v, before the failure delay of 300ms", took)
		}
	}
	// Locked, the account answers a wrong password exactly as an unknown
	// email is answered: the lock does not reveal that it exists.
	lockedWrong := p.do(portalCall{method: "POST", path: "/portal/auth/login", body: wrong}).want(t, http.StatusUnauthorized, "invalid_credentials")
	unknown := p.do(portalCall{method: "POST", path: "/portal/auth/login", body: map[string]any{"email": "nobody@example.com", "password": "not the password"}}).
		want(t, http.StatusUnauthorized, "invalid_credentials")
	if string(lockedWrong.Raw) != string(unknown.Raw) || lockedWrong.Header.Get("Retry-After") != "" {
		t.Fatalf("locked account: %s (Retry-After %q); unknown email: %s", lockedWrong.Raw, lockedWrong.Header.Get("Retry-After"), unknown.Raw)
	}
	sent := time.Now()
	locked := p.do(portalCall{method: "POST", path: "/portal/auth/login", body: map[string]any{"email": "ann@example.com", "password": portalPassword}}).
		want(t, http.StatusTooManyRequests, "login_locked")
	if took := time.Since(sent); took < 300*time.Millisecond {
		t.Fatalf("a lockout was answered after %v, before the failure delay of 300ms", took)
	}
	if ra, err := strconv.Atoi(locked.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 2 {
		t.Fatalf("Retry-After = %q, want 1 or 2", locked.Header.Get("Retry-After"))
	}
	u, err := p.services().Store.Users.GetByEmail(context.Background(), "ann@example.com")
	if err != nil || u.LockedUntil == nil {
		t.Fatalf("the lockout is not visible on the account: %+v, %v", u, err)
	}
	if got := p.metric(`msgbroker_portal_lockouts_total`); got < 1 {
		t.Fatalf("lockouts counter = %v", got)
	}
	time.Sleep(2100 * time.Millisecond)
	p.do(portalCall{method: "POST", path: "/portal/auth/login", body: map[string]any{"email": "ann@example.com", "password": portalPassword}}).
		want(t, http.StatusOK, "")
}

// The bcrypt budget (hashes_per_second, hash_burst) turns logins beyond it
// away with 429 login_busy and a Retry-After, whatever the email.
func TestPortalBcryptBudgetAnswersLoginBusy(t *testing.T) {
	p := startPortal(t, "sqlite", "login {\n\t\t\tbcrypt_cost 4\n\t\t\thashes_per_second 1\n\t\t\thash_burst 1\n\t\t\tfailure_delay off\n\t\t}")
	p.createUser("ann@example.com", storage.RoleUser, "proxy-a")
	busy := 0
	// Five logins in a row: one a second is admitted, so unless the five
	// take four seconds some are refused.
	for i := range 5 {
		email := "ann@example.com"
		if i%2 == 1 {
			email = "nobody@example.com"
		}
		a := p.do(portalCall{method: "POST", path: "/portal/auth/login", body: map[string]any{"email": email, "password": "not the password"}})
		if a.Status == http.StatusUnauthorized {
			continue
		}
		a.want(t, http.StatusTooManyRequests, "login_busy")
		if a.Header.Get("Retry-After") != "1" {
			t.Fatalf("Retry-After = %q, want 1", a.Header.Get("Retry-After"))
		}
		busy++
	}
	if busy == 0 {
		t.Fatal("five logins in a row all passed a budget of one a second")
	}
}

func TestPortalCookieModeNeedsTheCSRFHeader(t *testing.T) {
	eachPortalDialect(t, "", func(t *testing.T, p *portalGateway) {
		p.createUser("ann@example.com", storage.RoleUser, "proxy-a")
		login := p.do(portalCall{method: "POST", path: "/portal/auth/login",
			body: map[string]any{"email": "ann@example.com", "password": portalPassword, "use_cookie": true}}).want(t, http.StatusOK, "")
		if _, present := login.Body["refresh_token"]; present {
			t.Fatalf("cookie mode still returned the refresh token in the body: %s", login.Raw)
		}
		ck := findCookie(t, login.Cookies)
		if !ck.HttpOnly || !ck.Secure || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/portal/auth" {
			t.Fatalf("cookie attributes: HttpOnly=%v Secure=%v SameSite=%v Path=%q", ck.HttpOnly, ck.Secure, ck.SameSite, ck.Path)
		}
		p.do(portalCall{method: "POST", path: "/portal/auth/refresh", cookies: []*http.Cookie{ck}}).
			want(t, http.StatusForbidden, "csrf_header_required")
		csrf := http.Header{"X-Requested-With": {"fetch"}}
		refreshed := p.do(portalCall{method: "POST", path: "/portal/auth/refresh", cookies: []*http.Cookie{ck}, header: csrf}).want(t, http.StatusOK, "")
		next := findCookie(t, refreshed.Cookies)
		if next.Value == ck.Value {
			t.Fatal("the refresh did not rotate the cookie")
		}
		if got := p.do(portalCall{method: "POST", path: "/portal/auth/logout", cookies: []*http.Cookie{next}, header: csrf}); got.Status != http.StatusNoContent {
			t.Fatalf("logout = %d %s", got.Status, got.Raw)
		}
		p.do(portalCall{method: "POST", path: "/portal/auth/refresh", cookies: []*http.Cookie{next}, header: csrf}).
			want(t, http.StatusUnauthorized, "token_revoked")
	})
}

func findCookie(t *testing.T, cookies []*http.Cookie) *http.Cookie {
	t.Helper()
	for _, c := range cookies {
		if c.Name == "msgbroker_refresh" {
			return c
		}
	}
	t.Fatalf("no msgbroker_refresh cookie among %v", cookies)
	return nil
}

func TestPortalTenantsSeeOnlyTheirClientAndAdminsRevealBodiesAudited(t *testing.T) {
	eachPortalDialect(t, "", func(t *testing.T, p *portalGateway) {
		p.createUser("root@example.com", storage.RoleAdmin, "")
		p.createUser("ann@example.com", storage.RoleUser, "proxy-a")
		p.createUser("bob@example.com", storage.RoleUser, "proxy-b")
		aIDs := p.register("proxy-a", 3)
		bIDs := p.register("proxy-b", 2)
		root, _ := p.login("root@example.com")
		ann, _ := p.login("ann@example.com")
		bob, _ := p.login("bob@example.com")

		page := p.do(portalCall{method: "GET", path: "/portal/messages?limit=2", token: ann}).want(t, http.StatusOK, "")
		items := page.Body["items"].([]any)
		cursor := page.str("next_cursor")
		if len(items) != 2 || cursor == "" {
			t.Fatalf("first page = %s", page.Raw)
		}
		for _, it := range items {
			m := it.(map[string]any)
			if m["client_id"] != "proxy-a" || m["sender"] != "+4915****0000" {
				t.Fatalf("ann saw %v", m)
			}
		}
		last := p.do(portalCall{method: "GET", path: "/portal/messages?limit=2&cursor=" + cursor, token: ann}).want(t, http.StatusOK, "")
		if n := len(last.Body["items"].([]any)); n != 1 || last.str("next_cursor") != "" {
			t.Fatalf("second page = %s", last.Raw)
		}
		edited := []byte(cursor)
		edited[len(edited)-1] ^= 1
		p.do(portalCall{method: "GET", path: "/portal/messages?limit=2&cursor=" + string(edited), token: ann}).want(t, http.StatusBadRequest, "invalid_cursor")
		p.do(portalCall{method: "GET", path: "/portal/messages?limit=2&cursor=" + cursor, token: bob}).want(t, http.StatusBadRequest, "invalid_cursor")
		p.do(portalCall{method: "GET", path: "/portal/messages?client_id=proxy-b", token: ann}).want(t, http.StatusForbidden, "client_forbidden")
		p.do(portalCall{method: "GET", path: "/portal/messages/" + bIDs[0], token: ann}).want(t, http.StatusNotFound, "message_not_found")
		p.do(portalCall{method: "GET", path: "/portal/messages/" + aIDs[0] + "?decrypt=true", token: ann}).want(t, http.StatusForbidden, "decrypt_forbidden")
		p.do(portalCall{method: "GET", path: "/portal/messages?limit=500", token: ann}).want(t, http.StatusBadRequest, "invalid_limit")
		p.do(portalCall{method: "GET", path: "/portal/messages?status=lost", token: ann}).want(t, http.StatusBadRequest, "invalid_status")

		detail := p.do(portalCall{method: "GET", path: "/portal/messages/" + aIDs[0], token: ann}).want(t, http.StatusOK, "")
		if _, leaked := detail.Body["body"]; leaked || detail.Body["metadata"].(map[string]any)["campaign"] != "it" {
			t.Fatalf("detail without decrypt = %s", detail.Raw)
		}
		all := p.do(portalCall{method: "GET", path: "/portal/messages?client_id=proxy-b", token: root}).want(t, http.StatusOK, "")
		if n := len(all.Body["items"].([]any)); n != 2 {
			t.Fatalf("admin filter by client: %d items", n)
		}
		revealed := p.do(portalCall{method: "GET", path: "/portal/messages/" + aIDs[1] + "?decrypt=true", token: root}).want(t, http.StatusOK, "")
		if revealed.str("body") != "body 1" {
			t.Fatalf("revealed body = %q", revealed.str("body"))
		}
		entries, err := p.services().Store.Audit.List(context.Background(), storage.AuditFilter{Action: "message.decrypt"})
		if err != nil || len(entries) != 1 {
			t.Fatalf("audit rows for message.decrypt: %d, %v", len(entries), err)
		}
		if e := entries[0]; e.Actor != "root@example.com" || e.Target != aIDs[1] || e.RemoteAddr != "127.0.0.1" || e.Outcome != storage.AuditSuccess {
			t.Fatalf("audit row = %+v", e)
		}
	})
}
