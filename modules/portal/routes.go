package portal

import (
	"net/http"
	"time"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/internal/httpapi"
)

type loginRequest struct {
	Email     string `json:"email"`
	Password  string `json:"password"`
	UseCookie bool   `json:"use_cookie"`
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

type passwordRequest struct {
	CurrentPassword string `json:"current_password"`
	NewPassword     string `json:"new_password"`
	UseCookie       bool   `json:"use_cookie"`
}

// pairAnswer is a token pair; RefreshToken is empty in cookie mode.
type pairAnswer struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
}

type profileAnswer struct {
	ID          int64      `json:"id"`
	Email       string     `json:"email"`
	Role        string     `json:"role"`
	ClientID    *string    `json:"client_id"`
	CreatedAt   time.Time  `json:"created_at"`
	LastLoginAt *time.Time `json:"last_login_at"`
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request, c *call) error {
	var req loginRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if req.Email == "" || req.Password == "" {
		return apperr.New(apperr.Invalid, "missing_credentials", "email and password are required")
	}
	pair, err := c.portal.Login(r.Context(), req.Email, req.Password, httpapi.RemoteAddr(r))
	if err != nil {
		return err
	}
	writePair(w, r, pair, req.UseCookie)
	return nil
}

func (h *Handler) refresh(w http.ResponseWriter, r *http.Request, c *call) error {
	token, fromCookie, err := refreshToken(w, r)
	if err != nil {
		return err
	}
	pair, err := c.portal.Refresh(r.Context(), token)
	if err != nil {
		if fromCookie {
			clearCookie(w, r)
		}
		return err
	}
	writePair(w, r, pair, fromCookie)
	return nil
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request, c *call) error {
	token, fromCookie, err := refreshToken(w, r)
	if err != nil {
		return err
	}
	if err := c.portal.Logout(r.Context(), token); err != nil {
		return err
	}
	if fromCookie {
		clearCookie(w, r)
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// refreshToken reads the refresh token from the JSON body or, when the
// body is empty, from the cookie, which then needs the CSRF header.
func refreshToken(w http.ResponseWriter, r *http.Request) (token string, fromCookie bool, err error) {
	if r.ContentLength != 0 {
		var req refreshRequest
		if err := decode(w, r, &req); err != nil {
			return "", false, err
		}
		if req.RefreshToken != "" {
			return req.RefreshToken, false, nil
		}
	}
	ck, err := r.Cookie(RefreshCookie)
	if err != nil || ck.Value == "" {
		return "", false, apperr.New(apperr.Unauthenticated, "token_missing", "send refresh_token in the body or the %s cookie", RefreshCookie)
	}
	if r.Header.Get(CSRFHeader) == "" {
		return "", false, apperr.New(apperr.Forbidden, "csrf_header_required", "a request authenticated by cookie must carry the %s header", CSRFHeader)
	}
	return ck.Value, true, nil
}

func writePair(w http.ResponseWriter, r *http.Request, p broker.Pair, cookie bool) {
	ans := pairAnswer{AccessToken: p.AccessToken, RefreshToken: p.RefreshToken, TokenType: "bearer", ExpiresIn: p.ExpiresIn}
	if cookie {
		http.SetCookie(w, &http.Cookie{
			Name: RefreshCookie, Value: p.RefreshToken, Path: CookiePath,
			Expires: p.RefreshExpiresAt, MaxAge: int(time.Until(p.RefreshExpiresAt) / time.Second),
			HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
		})
		ans.RefreshToken = ""
	}
	httpapi.WriteJSON(w, http.StatusOK, ans)
}

func clearCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: RefreshCookie, Path: CookiePath, MaxAge: -1,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
}

func (h *Handler) profile(w http.ResponseWriter, _ *http.Request, c *call) error {
	u := c.principal.User
	httpapi.WriteJSON(w, http.StatusOK, profileAnswer{
		ID: u.ID, Email: u.Email, Role: u.Role, ClientID: u.ClientID, CreatedAt: u.CreatedAt, LastLoginAt: u.LastLoginAt,
	})
	return nil
}

func (h *Handler) password(w http.ResponseWriter, r *http.Request, c *call) error {
	var req passwordRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	pair, err := c.portal.ChangePassword(r.Context(), c.principal, req.CurrentPassword, req.NewPassword, httpapi.RemoteAddr(r))
	if err != nil {
		return err
	}
	writePair(w, r, pair, req.UseCookie)
	return nil
}

func (h *Handler) messages(w http.ResponseWriter, r *http.Request, c *call) error {
	q := r.URL.Query()
	page, err := c.portal.ListMessages(r.Context(), c.principal, broker.MessageQuery{
		Status: q.Get("status"), ClientID: q.Get("client_id"), Since: q.Get("since"), Until: q.Get("until"),
		Q: q.Get("q"), Limit: q.Get("limit"), Cursor: q.Get("cursor"),
	})
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, page)
	return nil
}

func (h *Handler) message(w http.ResponseWriter, r *http.Request, c *call) error {
	decrypt := false
	switch v := r.URL.Query().Get("decrypt"); v {
	case "", "false":
	case "true":
		decrypt = true
	default:
		return apperr.New(apperr.Invalid, "invalid_decrypt", "decrypt must be true or false")
	}
	d, err := c.portal.GetMessage(r.Context(), c.principal, c.param, decrypt, httpapi.RemoteAddr(r))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, d)
	return nil
}
