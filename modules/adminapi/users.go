package adminapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/internal/httpapi"
)

type userAnswer struct {
	ID                int64      `json:"id"`
	Email             string     `json:"email"`
	Role              string     `json:"role"`
	ClientID          *string    `json:"client_id"`
	Active            bool       `json:"active"`
	FailedLogins      int        `json:"failed_logins"`
	LockedUntil       *time.Time `json:"locked_until"`
	LastLoginAt       *time.Time `json:"last_login_at"`
	PasswordChangedAt time.Time  `json:"password_changed_at"`
	CreatedAt         time.Time  `json:"created_at"`
	UpdatedAt         time.Time  `json:"updated_at"`
}

type createUserRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Role     string `json:"role"`
	ClientID string `json:"client_id"`
}

// createdUser is a new account; GeneratedPassword is present, this once,
// when the request gave no password.
type createdUser struct {
	userAnswer
	GeneratedPassword string `json:"generated_password,omitempty"`
}

func (h *Handler) createUser(w http.ResponseWriter, r *http.Request, c *call) error {
	var req createUserRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	generated := ""
	if req.Password == "" {
		generated = broker.GeneratePassword()
		req.Password = generated
	}
	c.handedOver = true
	u, err := c.svcs.Users.Create(r.Context(), c.actor(r), broker.NewUser{
		Email: req.Email, Password: req.Password, Role: req.Role, ClientID: req.ClientID,
	})
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/admin/users/"+strconv.FormatInt(u.ID, 10))
	httpapi.WriteJSON(w, http.StatusCreated, createdUser{userAnswer: userOf(u), GeneratedPassword: generated})
	return nil
}

type userList struct {
	Items []userAnswer `json:"items"`
}

func (h *Handler) users(w http.ResponseWriter, r *http.Request, c *call) error {
	users, err := c.svcs.Users.List(r.Context())
	if err != nil {
		return err
	}
	ans := userList{Items: make([]userAnswer, 0, len(users))}
	for i := range users {
		ans.Items = append(ans.Items, userOf(&users[i]))
	}
	httpapi.WriteJSON(w, http.StatusOK, ans)
	return nil
}

func (h *Handler) user(w http.ResponseWriter, r *http.Request, c *call) error {
	u, err := c.svcs.Users.Get(r.Context(), c.id)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, userOf(u))
	return nil
}

// updateUserRequest: absent fields stay as they are; client_id "" clears
// the restriction.
type updateUserRequest struct {
	Role     *string `json:"role"`
	Active   *bool   `json:"active"`
	ClientID *string `json:"client_id"`
	Unlock   bool    `json:"unlock"`
}

func (h *Handler) updateUser(w http.ResponseWriter, r *http.Request, c *call) error {
	var req updateUserRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if req.Role == nil && req.Active == nil && req.ClientID == nil && !req.Unlock {
		return apperr.New(apperr.Invalid, "nothing_to_change", "give at least one of role, active, client_id, unlock")
	}
	c.handedOver = true
	u, err := c.svcs.Users.Update(r.Context(), c.actor(r), c.id, broker.UserChanges{
		Role: req.Role, IsActive: req.Active, ClientID: req.ClientID, Unlock: req.Unlock,
	})
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, userOf(u))
	return nil
}

func (h *Handler) deleteUser(w http.ResponseWriter, r *http.Request, c *call) error {
	c.handedOver = true
	if err := c.svcs.Users.Delete(r.Context(), c.actor(r), c.id); err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
	return nil
}
