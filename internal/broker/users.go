package broker

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"net/mail"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/internal/clientca"
	"github.com/msgbroker/caddy-msgbroker/storage"
)

// Password policy. bcrypt reads at most 72 bytes of a password and
// x/crypto refuses longer ones, so a longer password is refused rather
// than silently truncated.
const (
	MinPasswordLength = 8
	MaxPasswordBytes  = 72
	// DefaultBcryptCost is the bcrypt work factor when Users.BcryptCost
	// is zero: about 0.25 s per hash on current servers.
	DefaultBcryptCost = 12
	// maxEmailLength is the width of users.email.
	maxEmailLength = 255
)

// Users manages portal accounts: the one place that applies the password
// policy, hashes passwords and protects the last administrator, for the
// admin API and the CLI alike. Every change is audited.
type Users struct {
	Store *storage.Store
	// BcryptCost is the bcrypt work factor (default DefaultBcryptCost,
	// between bcrypt.MinCost and bcrypt.MaxCost).
	BcryptCost int
	// Logger reports audit writes that failed (may be nil).
	Logger *zap.Logger
}

// NewUser asks for an account.
type NewUser struct {
	Email    string
	Password string
	// Role is storage.RoleAdmin or storage.RoleUser (default).
	Role string
	// ClientID restricts a RoleUser account to one client's messages.
	ClientID string
}

// UserChanges are the fields of an account that Update changes; nil
// fields stay as they are. An empty ClientID clears the restriction.
type UserChanges struct {
	Role     *string
	ClientID *string
	IsActive *bool
	// Unlock clears a login lockout and the failure count.
	Unlock bool
}

// CheckPassword applies the password policy. Its errors are Invalid and
// never repeat the password.
func CheckPassword(password string) error {
	if utf8.RuneCountInString(password) < MinPasswordLength {
		return apperr.New(apperr.Invalid, "password_too_short", "a password needs at least %d characters", MinPasswordLength)
	}
	if len(password) > MaxPasswordBytes {
		return apperr.New(apperr.Invalid, "password_too_long", "a password may have at most %d bytes", MaxPasswordBytes)
	}
	if strings.TrimSpace(password) == "" {
		return apperr.New(apperr.Invalid, "password_blank", "a password cannot be only spaces")
	}
	return nil
}

// HashPassword checks password against the policy and returns its bcrypt
// hash.
func (s *Users) HashPassword(password string) (string, error) {
	if err := CheckPassword(password); err != nil {
		return "", err
	}
	cost := s.BcryptCost
	if cost == 0 {
		cost = DefaultBcryptCost
	}
	if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
		return "", fmt.Errorf("bcrypt cost %d is outside %d..%d", cost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return "", fmt.Errorf("hashing password: %w", err)
	}
	return string(hash), nil
}

// Create makes an active account.
func (s *Users) Create(ctx context.Context, actor Actor, req NewUser) (*storage.User, error) {
	u, err := s.create(ctx, req)
	target := strings.ToLower(strings.TrimSpace(req.Email))
	if u != nil {
		target = userTarget(u)
	}
	s.audit(ctx, actor, "user.create", target, err, "role: "+req.Role)
	return u, err
}

func (s *Users) create(ctx context.Context, req NewUser) (*storage.User, error) {
	email, err := normalizeEmail(req.Email)
	if err != nil {
		return nil, err
	}
	if req.Role == "" {
		req.Role = storage.RoleUser
	}
	clientID, err := checkRoleClient(req.Role, req.ClientID)
	if err != nil {
		return nil, err
	}
	hash, err := s.HashPassword(req.Password)
	if err != nil {
		return nil, err
	}
	u := &storage.User{Email: email, PasswordHash: hash, Role: req.Role, ClientID: clientID, IsActive: true}
	err = s.Store.Users.Create(ctx, u)
	if errors.Is(err, storage.ErrConflict) {
		return nil, apperr.New(apperr.Conflict, "email_taken", "a user with email %s already exists", email)
	}
	if err != nil {
		return nil, fmt.Errorf("creating user %s: %w", email, err)
	}
	return u, nil
}

// Lookup returns the user with the given id, or with the given email when
// ref contains "@".
func (s *Users) Lookup(ctx context.Context, ref string) (*storage.User, error) {
	ref = strings.TrimSpace(ref)
	var (
		u   *storage.User
		err error
	)
	if strings.Contains(ref, "@") {
		u, err = s.Store.Users.GetByEmail(ctx, ref)
	} else {
		id, perr := strconv.ParseInt(ref, 10, 64)
		if perr != nil || id <= 0 {
			return nil, apperr.New(apperr.Invalid, "invalid_user", "%q is neither a user id nor an email address", ref)
		}
		u, err = s.Store.Users.GetByID(ctx, id)
	}
	if errors.Is(err, storage.ErrNotFound) {
		return nil, apperr.New(apperr.NotFound, "user_not_found", "no user %s", ref)
	}
	if err != nil {
		return nil, fmt.Errorf("looking up user %s: %w", ref, err)
	}
	return u, nil
}

// Delete removes an account. It refuses to remove the last active
// administrator, which would leave nobody able to use the admin API.
func (s *Users) Delete(ctx context.Context, actor Actor, id int64) error {
	target := fmt.Sprintf("user %d", id)
	u, err := s.get(ctx, id)
	if err == nil {
		target = userTarget(u)
		err = s.keepAnAdmin(ctx, u, storage.RoleUser, false)
	}
	if err == nil {
		// keepAnAdmin gives the friendly answer; the repository enforces the
		// rule atomically against a concurrent deletion of the other admin.
		err = s.Store.Users.DeleteUnlessLastAdmin(ctx, id)
		switch {
		case errors.Is(err, storage.ErrLastAdmin):
			err = apperr.New(apperr.Conflict, "last_admin", "user %d (%s) is the last active administrator; create another admin first", u.ID, u.Email)
		case errors.Is(err, storage.ErrNotFound):
			err = apperr.New(apperr.NotFound, "user_not_found", "no user %d", id)
		case err != nil:
			err = fmt.Errorf("deleting user %d: %w", id, err)
		}
	}
	s.audit(ctx, actor, "user.delete", target, err, "")
	return err
}

// SetPassword replaces an account's password and clears any lockout, as
// an administrator resetting a password means to let the user back in.
func (s *Users) SetPassword(ctx context.Context, actor Actor, id int64, password string) error {
	target := fmt.Sprintf("user %d", id)
	u, err := s.get(ctx, id)
	if err == nil {
		target = userTarget(u)
		err = s.setPassword(ctx, u, password)
	}
	s.audit(ctx, actor, "user.password", target, err, "")
	return err
}

func (s *Users) setPassword(ctx context.Context, u *storage.User, password string) error {
	hash, err := s.HashPassword(password)
	if err != nil {
		return err
	}
	u.PasswordHash = hash
	u.PasswordChangedAt = time.Now().UTC()
	if err := s.Store.Users.Update(ctx, u); err != nil {
		return fmt.Errorf("updating password of user %d: %w", u.ID, err)
	}
	if u.LockedAt(time.Now()) || u.FailedLogins > 0 {
		if err := s.Store.Users.LockUntil(ctx, u.ID, time.Time{}); err != nil {
			return fmt.Errorf("unlocking user %d: %w", u.ID, err)
		}
	}
	return nil
}

// Update changes an account's role, client restriction or active flag. It
// refuses to demote or deactivate the last active administrator.
func (s *Users) Update(ctx context.Context, actor Actor, id int64, ch UserChanges) (*storage.User, error) {
	target := fmt.Sprintf("user %d", id)
	u, err := s.get(ctx, id)
	if err == nil {
		target = userTarget(u)
		err = s.update(ctx, u, ch)
	}
	s.audit(ctx, actor, "user.update", target, err, describeChanges(ch))
	if err != nil {
		return nil, err
	}
	return u, nil
}

func (s *Users) update(ctx context.Context, u *storage.User, ch UserChanges) error {
	role, active := u.Role, u.IsActive
	if ch.Role != nil {
		role = *ch.Role
	}
	if ch.IsActive != nil {
		active = *ch.IsActive
	}
	clientID := ""
	if u.ClientID != nil {
		clientID = *u.ClientID
	}
	if ch.ClientID != nil {
		clientID = *ch.ClientID
	}
	cid, err := checkRoleClient(role, clientID)
	if err != nil {
		return err
	}
	if err := s.keepAnAdmin(ctx, u, role, active); err != nil {
		return err
	}
	wasActive := u.IsActive
	u.Role, u.IsActive, u.ClientID = role, active, cid
	// keepAnAdmin gives the friendly answer; the repository enforces the
	// rule atomically against a concurrent change of the other admin.
	err = s.Store.Users.UpdateUnlessLastAdmin(ctx, u)
	switch {
	case errors.Is(err, storage.ErrLastAdmin):
		return apperr.New(apperr.Conflict, "last_admin", "user %d (%s) is the last active administrator; create another admin first", u.ID, u.Email)
	case errors.Is(err, storage.ErrNotFound):
		return apperr.New(apperr.NotFound, "user_not_found", "no user %d", u.ID)
	case err != nil:
		return fmt.Errorf("updating user %d: %w", u.ID, err)
	}
	if wasActive && !active {
		// Access tokens already stop at the next request (Portal.Authenticate
		// reads is_active); revoking the sessions keeps a later reactivation
		// from reviving them.
		if _, err := s.Store.RefreshTokens.RevokeAllForUser(ctx, u.ID, time.Now()); err != nil {
			return fmt.Errorf("ending sessions of user %d: %w", u.ID, err)
		}
	}
	if ch.Unlock {
		if err := s.Store.Users.LockUntil(ctx, u.ID, time.Time{}); err != nil {
			return fmt.Errorf("unlocking user %d: %w", u.ID, err)
		}
		u.LockedUntil, u.FailedLogins = nil, 0
	}
	return nil
}

// List returns every account, by id.
func (s *Users) List(ctx context.Context) ([]storage.User, error) {
	users, err := s.Store.Users.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing users: %w", err)
	}
	return users, nil
}

// Get returns the account with id.
func (s *Users) Get(ctx context.Context, id int64) (*storage.User, error) { return s.get(ctx, id) }

// GeneratePassword returns a random password that satisfies the policy:
// 20 characters of a 57-letter alphabet without look-alikes (about 116
// bits), for an account created without one.
func GeneratePassword() string {
	const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
	b := make([]byte, 20)
	for i := range b {
		// rand.Int draws uniformly, without the bias of a byte modulo 57.
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			panic("crypto/rand failed: " + err.Error()) // it never returns an error on supported systems
		}
		b[i] = alphabet[n.Int64()]
	}
	return string(b)
}

// keepAnAdmin refuses a change that leaves u with role newRole and active
// flag newActive when u is the last active administrator. It is the
// friendly early answer; the repository's UpdateUnlessLastAdmin and
// DeleteUnlessLastAdmin enforce the rule atomically.
func (s *Users) keepAnAdmin(ctx context.Context, u *storage.User, newRole string, newActive bool) error {
	if u.Role != storage.RoleAdmin || !u.IsActive || (newRole == storage.RoleAdmin && newActive) {
		return nil
	}
	users, err := s.Store.Users.List(ctx)
	if err != nil {
		return fmt.Errorf("counting administrators: %w", err)
	}
	for _, other := range users {
		if other.ID != u.ID && other.Role == storage.RoleAdmin && other.IsActive {
			return nil
		}
	}
	return apperr.New(apperr.Conflict, "last_admin", "user %d (%s) is the last active administrator; create another admin first", u.ID, u.Email)
}

func (s *Users) get(ctx context.Context, id int64) (*storage.User, error) {
	u, err := s.Store.Users.GetByID(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, apperr.New(apperr.NotFound, "user_not_found", "no user %d", id)
	}
	if err != nil {
		return nil, fmt.Errorf("loading user %d: %w", id, err)
	}
	return u, nil
}

// audit records a user action; a failed audit write is logged, since the
// action itself has already happened.
func (s *Users) audit(ctx context.Context, actor Actor, action, target string, err error, details string) {
	target = clip(target, maxEmailLength)
	outcome := storage.AuditSuccess
	if err != nil {
		outcome, details = storage.AuditFailure, errorSummary(err)
	}
	if aerr := Audit(ctx, s.Store, actor, action, target, outcome, details); aerr != nil && s.Logger != nil {
		s.Logger.Error("audit log write failed", zap.String("action", action), zap.String("target", target), zap.Error(aerr))
	}
}

// normalizeEmail checks that s is a bare address (no display name) and
// returns it lowercased.
func normalizeEmail(s string) (string, error) {
	s = strings.TrimSpace(s)
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Address != s || addr.Name != "" {
		return "", apperr.New(apperr.Invalid, "invalid_email", "%q is not an email address such as admin@example.com", s)
	}
	if len(s) > maxEmailLength {
		return "", apperr.New(apperr.Invalid, "invalid_email", "an email address may have at most %d characters", maxEmailLength)
	}
	return strings.ToLower(s), nil
}

// checkRoleClient validates a role and the client restriction that goes
// with it, returning the restriction to store.
func checkRoleClient(role, clientID string) (*string, error) {
	switch role {
	case storage.RoleAdmin:
		if clientID != "" {
			return nil, apperr.New(apperr.Invalid, "client_for_admin", "an admin sees every client's messages; a client applies to role user only")
		}
		return nil, nil
	case storage.RoleUser:
		if clientID == "" {
			return nil, nil
		}
		if !clientca.ValidClientID(clientID) {
			return nil, apperr.New(apperr.Invalid, "invalid_client_id", "a client id is 1-64 characters of A-Z, a-z, 0-9, '.', '_', '-'")
		}
		return &clientID, nil
	default:
		return nil, apperr.New(apperr.Invalid, "invalid_role", "role must be admin or user, not %q", role)
	}
}

func userTarget(u *storage.User) string {
	return fmt.Sprintf("user %d %s", u.ID, u.Email)
}

func describeChanges(ch UserChanges) string {
	var parts []string
	if ch.Role != nil {
		parts = append(parts, "role: "+*ch.Role)
	}
	if ch.ClientID != nil {
		parts = append(parts, "client: "+*ch.ClientID)
	}
	if ch.IsActive != nil {
		parts = append(parts, fmt.Sprintf("active: %t", *ch.IsActive))
	}
	if ch.Unlock {
		parts = append(parts, "unlock")
	}
	return strings.Join(parts, ", ")
}

// clip shortens s to at most n bytes without splitting a character, for
// columns of limited width.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
