package integration

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/msgbroker/caddy-msgbroker/storage"
)

// TestAdminUsers creates, reads, changes and deletes accounts over HTTP,
// and checks that deactivation and deletion end the user's tokens at once.
func TestAdminUsers(t *testing.T) {
	eachAdminDialect(t, func(t *testing.T, p *portalGateway) {
		admin, _ := p.login("admin@example.com")
		created := p.do(portalCall{method: "POST", path: "/admin/users", token: admin,
			body: map[string]any{"email": " Tenant@Example.COM ", "role": "user", "client_id": "proxy-1"}}).want(t, http.StatusCreated, "")
		password := created.str("generated_password")
		if created.str("email") != "tenant@example.com" || len(password) != 20 || created.Header.Get("Location") != "/admin/users/"+p.userID("tenant@example.com") {
			t.Fatalf("created = %s (Location %q)", created.Raw, created.Header.Get("Location"))
		}
		id := p.userID("tenant@example.com")
		p.do(portalCall{method: "POST", path: "/admin/users", token: admin,
			body: map[string]any{"email": "tenant@example.com", "password": "another password"}}).want(t, http.StatusConflict, "email_taken")
		p.do(portalCall{method: "POST", path: "/admin/users", token: admin,
			body: map[string]any{"email": "Bob <bob@example.com>"}}).want(t, http.StatusBadRequest, "invalid_email")
		p.do(portalCall{method: "POST", path: "/admin/users", token: admin,
			body: map[string]any{"email": "bob@example.com", "password": "short"}}).want(t, http.StatusBadRequest, "password_too_short")
		p.do(portalCall{method: "POST", path: "/admin/users", token: admin,
			body: map[string]any{"email": "bob@example.com", "role": "root"}}).want(t, http.StatusBadRequest, "invalid_role")

		// The generated password logs in.
		login := p.do(portalCall{method: "POST", path: "/portal/auth/login", body: map[string]any{"email": "tenant@example.com", "password": password}}).
			want(t, http.StatusOK, "")
		tenant, tenantRefresh := login.str("access_token"), login.str("refresh_token")
		p.do(portalCall{method: "GET", path: "/admin/users", token: tenant}).want(t, http.StatusForbidden, "admin_required")
		p.do(portalCall{method: "DELETE", path: "/admin/users/1", token: tenant}).want(t, http.StatusForbidden, "admin_required")
		if rows := p.auditRows("user.delete"); len(rows) != 1 || rows[0].Actor != "tenant@example.com" || rows[0].Outcome != storage.AuditFailure ||
			!strings.HasPrefix(*rows[0].Details, "admin_required") {
			t.Fatalf("a user's refused deletion is not audited as such: %+v", rows)
		}

		list := p.do(portalCall{method: "GET", path: "/admin/users", token: admin}).want(t, http.StatusOK, "")
		if n := len(list.Body["items"].([]any)); n != 2 {
			t.Fatalf("%d users listed, want 2", n)
		}
		one := p.do(portalCall{method: "GET", path: "/admin/users/" + id, token: admin}).want(t, http.StatusOK, "")
		if one.str("client_id") != "proxy-1" || one.Body["active"] != true {
			t.Fatalf("user = %s", one.Raw)
		}
		p.do(portalCall{method: "GET", path: "/admin/users/x", token: admin}).want(t, http.StatusBadRequest, "invalid_user_id")
		p.do(portalCall{method: "GET", path: "/admin/users/999999", token: admin}).want(t, http.StatusNotFound, "user_not_found")
		p.do(portalCall{method: "PATCH", path: "/admin/users/" + id, token: admin, body: map[string]any{}}).want(t, http.StatusBadRequest, "nothing_to_change")
		p.do(portalCall{method: "PATCH", path: "/admin/users/" + id, token: admin, body: map[string]any{"role": "admin"}}).
			want(t, http.StatusBadRequest, "client_for_admin")
		moved := p.do(portalCall{method: "PATCH", path: "/admin/users/" + id, token: admin, body: map[string]any{"client_id": "proxy-2", "unlock": true}}).
			want(t, http.StatusOK, "")
		if moved.str("client_id") != "proxy-2" {
			t.Fatalf("patched = %s", moved.Raw)
		}

		// Deactivation ends the tenant's tokens at once.
		p.do(portalCall{method: "GET", path: "/portal/profile", token: tenant}).want(t, http.StatusOK, "")
		p.do(portalCall{method: "PATCH", path: "/admin/users/" + id, token: admin, body: map[string]any{"active": false}}).want(t, http.StatusOK, "")
		p.do(portalCall{method: "GET", path: "/portal/profile", token: tenant}).want(t, http.StatusUnauthorized, "token_user_inactive")
		p.do(portalCall{method: "PATCH", path: "/admin/users/" + id, token: admin, body: map[string]any{"active": true}}).want(t, http.StatusOK, "")
		// Reactivation does not revive the session that deactivation ended.
		p.do(portalCall{method: "POST", path: "/portal/auth/refresh", body: map[string]any{"refresh_token": tenantRefresh}}).
			want(t, http.StatusUnauthorized, "token_revoked")
		tenant = p.do(portalCall{method: "POST", path: "/portal/auth/login", body: map[string]any{"email": "tenant@example.com", "password": password}}).
			want(t, http.StatusOK, "").str("access_token")
		if a := p.do(portalCall{method: "DELETE", path: "/admin/users/" + id, token: admin}); a.Status != http.StatusNoContent {
			t.Fatalf("DELETE = %d %s", a.Status, a.Raw)
		}
		p.do(portalCall{method: "GET", path: "/portal/profile", token: tenant}).want(t, http.StatusUnauthorized, "token_user_unknown")
		p.do(portalCall{method: "DELETE", path: "/admin/users/" + id, token: admin}).want(t, http.StatusNotFound, "user_not_found")

		// The last admin stays.
		self := p.userID("admin@example.com")
		p.do(portalCall{method: "PATCH", path: "/admin/users/" + self, token: admin, body: map[string]any{"role": "user"}}).want(t, http.StatusConflict, "last_admin")
		p.do(portalCall{method: "PATCH", path: "/admin/users/" + self, token: admin, body: map[string]any{"active": false}}).want(t, http.StatusConflict, "last_admin")
		p.do(portalCall{method: "DELETE", path: "/admin/users/" + self, token: admin}).want(t, http.StatusConflict, "last_admin")
		p.do(portalCall{method: "PUT", path: "/admin/users/" + self, token: admin, body: map[string]any{}}).want(t, http.StatusMethodNotAllowed, "method_not_allowed")
		p.do(portalCall{method: "GET", path: "/admin/nothing", token: admin}).want(t, http.StatusNotFound, "not_found")
		for _, a := range append(p.auditRows("user.update"), p.auditRows("user.create")...) {
			if a.Actor != "admin@example.com" && a.Actor != adminActor.Name || a.RemoteAddr == "" {
				t.Fatalf("audit row %+v", a)
			}
		}
	})
}

// TestAdminLastAdminRaces: two admins demote (or delete) each other at
// the same instant, many times; exactly one of each pair succeeds, so an
// active admin always remains — on both databases.
func TestAdminLastAdminRaces(t *testing.T) {
	eachAdminDialect(t, func(t *testing.T, p *portalGateway) {
		for round := range 10 {
			p.createUser("second@example.com", storage.RoleAdmin, "")
			a, _ := p.login("admin@example.com")
			b, _ := p.login("second@example.com")
			ida, idb := p.userID("admin@example.com"), p.userID("second@example.com")
			method, body := "PATCH", any(map[string]any{"role": "user"})
			if round%2 == 1 {
				method, body = "DELETE", nil
			}
			if round%4 == 2 {
				body = map[string]any{"active": false}
			}
			var wg sync.WaitGroup
			statuses := make([]int, 2)
			for i, c := range []struct{ token, target string }{{a, idb}, {b, ida}} {
				wg.Go(func() {
					statuses[i] = p.do(portalCall{method: method, path: "/admin/users/" + c.target, token: c.token, body: body}).Status
				})
			}
			wg.Wait()
			ok, refused := 0, 0
			for _, s := range statuses {
				switch s {
				case http.StatusOK, http.StatusNoContent:
					ok++
				case http.StatusConflict, http.StatusUnauthorized, http.StatusForbidden:
					// 409 last_admin; or the other request won first and this
					// caller is no longer an active admin (401/403).
					refused++
				}
			}
			if ok != 1 || refused != 1 {
				t.Fatalf("round %d (%s %v): statuses %v, want exactly one success", round, method, body, statuses)
			}
			if n := activeAdmins(t, p); n != 1 {
				t.Fatalf("round %d: %d active admins remain", round, n)
			}
			// Put the pair back: the loser is whoever remains admin.
			p.resetAdmins()
		}
	})
}

func activeAdmins(t *testing.T, p *portalGateway) int {
	t.Helper()
	users, err := p.services().Users.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, u := range users {
		if u.Role == storage.RoleAdmin && u.IsActive {
			n++
		}
	}
	return n
}

// resetAdmins leaves admin@example.com the only account, an active admin.
func (p *portalGateway) resetAdmins() {
	p.t.Helper()
	ctx := p.t.Context()
	users, err := p.services().Users.List(ctx)
	if err != nil {
		p.t.Fatal(err)
	}
	for _, u := range users {
		if u.Email == "admin@example.com" {
			u.Role, u.IsActive = storage.RoleAdmin, true
			if err := p.services().Store.Users.Update(ctx, &u); err != nil {
				p.t.Fatal(err)
			}
			continue
		}
		if err := p.services().Store.Users.Delete(ctx, u.ID); err != nil {
			p.t.Fatal(err)
		}
	}
	if _, err := p.services().Users.Lookup(ctx, "admin@example.com"); err != nil {
		p.createUser("admin@example.com", storage.RoleAdmin, "")
	}
}
