package broker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/internal/keyring"
	"github.com/msgbroker/caddy-msgbroker/internal/tokens"
	"github.com/msgbroker/caddy-msgbroker/storage"
)

// Defaults of the login protection.
const (
	DefaultMaxFailedLogins        = 5
	DefaultLockout                = 15 * time.Minute
	DefaultAddressMaxFailedLogins = 20
	DefaultFailureDelay           = time.Second
)

// maxHeldFailures bounds how many refused logins are held back at once
// (see LoginLimits.FailureDelay); beyond it they are answered at once, so
// holding answers cannot itself exhaust memory.
const maxHeldFailures = 10000

// LoginLimits configure the lockouts. An account is locked for Lockout
// after MaxFailures wrong passwords in a row; an address after
// AddressMaxFailures failed logins (any account, known or not) within
// Lockout. Negative values disable a limit.
//
// A login that does not succeed (wrong password, lockout, full bcrypt
// budget) is answered no sooner than FailureDelay after it arrived, as
// login(1) and PAM delay a failure. A person who mistyped waits a second;
// a flood whose clients wait for each answer (every HTTP client does on a
// connection) is slowed to FailureDelay per attempt and client, so its
// refusals cannot take the CPU the internal API needs, and the time of an
// answer tells nothing of how far the check went. Negative disables it.
type LoginLimits struct {
	MaxFailures        int
	AddressMaxFailures int
	Lockout            time.Duration
	FailureDelay       time.Duration
}

// PortalMetrics count what the portal does; any may be nil.
type PortalMetrics struct {
	// Logins is labelled by outcome: success, failure, locked, busy.
	Logins          *prometheus.CounterVec
	Refreshes       prometheus.Counter
	ReuseDetections prometheus.Counter
	Lockouts        prometheus.Counter
}

// Portal is the people's side of the broker: login, token refresh with
// rotation, logout, profile, password change and message viewing. The
// admin API authenticates through the same Authenticate.
type Portal struct {
	Store  *storage.Store
	Tokens *tokens.Manager
	// Users supplies the password policy and the bcrypt cost.
	Users *Users
	// Pool runs bcrypt (default: NewHashPool(HashLimits{})).
	Pool *HashPool
	// Keys decrypts bodies for admins.
	Keys func() *keyring.Keyring
	// CursorKey authenticates pagination cursors (at least 32 bytes).
	CursorKey []byte
	Limits    LoginLimits
	Metrics   PortalMetrics
	Logger    *zap.Logger
	// Now is the clock (default time.Now), for tests.
	Now func() time.Time
	// wait holds a failed login's answer (default: a timer that the
	// request's context cancels), for tests.
	wait func(ctx context.Context, d time.Duration)

	initOnce  sync.Once
	dummyHash string
	dummyErr  error
	addresses addressGuard
	// held counts the failed logins whose answers are being held.
	held atomic.Int64
	// lastPurge is when expired refresh tokens were last purged (unix
	// seconds).
	lastPurge atomic.Int64
}

// purgeInterval is how often logins purge expired refresh tokens.
const purgeInterval = time.Hour

// Pair is what a login or a refresh returns.
type Pair struct {
	AccessToken      string
	RefreshToken     string
	ExpiresIn        int64
	RefreshExpiresAt time.Time
}

// Principal is the authenticated caller of a portal request.
type Principal struct {
	User *storage.User
	// Claims are those of the access token presented.
	Claims *tokens.Claims
}

// IsAdmin reports whether the caller sees every client.
func (p *Principal) IsAdmin() bool { return p.User.Role == storage.RoleAdmin }

func (s *Portal) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Portal) init() {
	s.initOnce.Do(func() {
		if s.Pool == nil {
			s.Pool = NewHashPool(HashLimits{})
		}
		l := s.Limits
		s.addresses = addressGuard{
			max:     orInt(l.AddressMaxFailures, DefaultAddressMaxFailedLogins),
			window:  orDur(l.Lockout, DefaultLockout),
			lockout: orDur(l.Lockout, DefaultLockout),
		}
		// An unknown email is compared against this hash of the same cost,
		// so it costs the same time as a known one and timing does not tell
		// which addresses have accounts.
		var h []byte
		h, s.dummyErr = bcrypt.GenerateFromPassword([]byte("not a password of anyone"), s.cost())
		s.dummyHash = string(h)
	})
}

func (s *Portal) cost() int {
	if s.Users != nil && s.Users.BcryptCost != 0 {
		return s.Users.BcryptCost
	}
	return DefaultBcryptCost
}

var errBadCredentials = apperr.New(apperr.Unauthenticated, "invalid_credentials", "the email or password is wrong")

// Login checks an email and password from remoteAddr and starts a new
// session (a new refresh family). Whoever does not know the password gets
// the same 401 invalid_credentials, after the same bcrypt, whether the
// email is unknown, the account deactivated or locked; only the right
// password on a locked account is told of the lock (429 login_locked with
// its Retry-After), and it does not log in. A locked address and a full
// bcrypt budget answer 429 before anything is looked up.
func (s *Portal) Login(ctx context.Context, email, password, remoteAddr string) (pair Pair, err error) {
	// Taken before init, whose first call computes a bcrypt hash: the
	// delay then covers that too, so the first failure after a start
	// takes no longer than any other.
	arrived := time.Now()
	s.init()
	defer func() {
		if err != nil {
			s.holdFailure(ctx, arrived)
		}
	}()
	return s.login(ctx, email, password, remoteAddr)
}

// holdFailure waits until the failure delay has passed since arrived,
// unless the request goes away first or too many answers are held.
func (s *Portal) holdFailure(ctx context.Context, arrived time.Time) {
	delay := orDur(s.Limits.FailureDelay, DefaultFailureDelay)
	if delay <= 0 {
		return
	}
	if s.held.Add(1) > maxHeldFailures {
		s.held.Add(-1)
		return
	}
	defer s.held.Add(-1)
	rest := delay - time.Since(arrived)
	if rest <= 0 {
		return
	}
	if s.wait != nil {
		s.wait(ctx, rest)
		return
	}
	t := time.NewTimer(rest)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// login is Login without the failure delay.
func (s *Portal) login(ctx context.Context, email, password, remoteAddr string) (Pair, error) {
	if s.dummyErr != nil {
		return Pair{}, fmt.Errorf("preparing login: %w", s.dummyErr)
	}
	now := s.now()
	if err := s.addresses.check(remoteAddr, now); err != nil {
		s.countLogin("locked")
		return Pair{}, err
	}
	release, err := s.Pool.admit(now)
	if err != nil {
		s.countLogin("busy")
		return Pair{}, err
	}
	defer release()
	u, err := s.Store.Users.GetByEmail(ctx, email)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return Pair{}, fmt.Errorf("looking up %s: %w", "login user", err)
	}
	if u == nil {
		if _, err := s.Pool.Compare(ctx, s.dummyHash, password); err != nil {
			return Pair{}, err
		}
		return Pair{}, s.loginFailed(ctx, nil, remoteAddr, "unknown email")
	}
	// A locked account is checked like any other, bcrypt included: were it
	// refused before the password, its 429 (and its speed) would tell an
	// attacker which addresses have accounts. Only the right password
	// learns of the lock.
	match, err := s.Pool.Compare(ctx, u.PasswordHash, password)
	if err != nil {
		return Pair{}, err
	}
	if !match {
		return Pair{}, s.loginFailed(ctx, u, remoteAddr, "wrong password")
	}
	if !u.IsActive {
		return Pair{}, s.loginFailed(ctx, u, remoteAddr, "account deactivated")
	}
	if u.LockedAt(now) {
		s.countLogin("locked")
		s.logger().Warn("login of a locked account refused", zap.Int64("user_id", u.ID), zap.String("remote_addr", remoteAddr))
		return Pair{}, lockedOut(u.LockedUntil.Sub(now))
	}
	s.rehash(ctx, u, password)
	if err := s.Store.Users.ResetLoginFailures(ctx, u.ID, now); err != nil {
		return Pair{}, fmt.Errorf("recording login of user %d: %w", u.ID, err)
	}
	pair, err := s.issuePair(ctx, u, uuid.NewString())
	if err != nil {
		return Pair{}, err
	}
	s.countLogin("success")
	s.logger().Info("user logged in", zap.Int64("user_id", u.ID), zap.String("email", u.Email), zap.String("remote_addr", remoteAddr))
	return pair, nil
}

// loginFailed counts a failure against the address and, for a known
// account, against the account, locking either when it reaches its limit.
func (s *Portal) loginFailed(ctx context.Context, u *storage.User, remoteAddr, reason string) error {
	now := s.now()
	s.countLogin("failure")
	fields := []zap.Field{zap.String("reason", reason), zap.String("remote_addr", remoteAddr)}
	if u != nil {
		fields = append(fields, zap.Int64("user_id", u.ID))
	}
	s.logger().Warn("login failed", fields...)
	if s.addresses.fail(remoteAddr, now) {
		s.countLockout()
		s.logger().Warn("address locked out after failed logins", zap.String("remote_addr", remoteAddr), zap.Duration("for", s.addresses.lockout))
	}
	// Failures against a locked account count for the address only: the
	// lock ends when the Retry-After given to the owner said it would,
	// rather than being pushed on by whoever keeps guessing.
	if u == nil || !u.IsActive || u.LockedAt(now) {
		return errBadCredentials
	}
	maxFailures := orInt(s.Limits.MaxFailures, DefaultMaxFailedLogins)
	lockout := orDur(s.Limits.Lockout, DefaultLockout)
	updated, err := s.Store.Users.RecordLoginFailure(ctx, u.ID, maxFailures, lockout, now)
	if err != nil {
		return fmt.Errorf("recording failed login of user %d: %w", u.ID, err)
	}
	if updated.LockedAt(now) {
		s.countLockout()
		s.logger().Warn("account locked out after failed logins", zap.Int64("user_id", u.ID), zap.Time("until", *updated.LockedUntil))
		if aerr := Audit(ctx, s.Store, Actor{Name: "system", RemoteAddr: remoteAddr}, "user.lockout", userTarget(u), storage.AuditSuccess,
			fmt.Sprintf("%d failed logins", maxFailures)); aerr != nil {
			s.logger().Error("audit log write failed", zap.Error(aerr))
		}
	}
	return errBadCredentials
}

// rehash stores the password at the configured cost when its hash has
// another; a failure only costs the upgrade, not the login.
func (s *Portal) rehash(ctx context.Context, u *storage.User, password string) {
	cost, err := bcrypt.Cost([]byte(u.PasswordHash))
	if err != nil || cost == s.cost() {
		return
	}
	hash, err := s.Pool.Hash(ctx, password, s.cost())
	if err == nil {
		// Keep the password stamp: the password itself did not change, so
		// the user's other sessions stay valid.
		u.PasswordHash = hash
		err = s.Store.Users.Update(ctx, u)
	}
	if err != nil {
		s.logger().Warn("rehashing a password at the configured cost failed", zap.Int64("user_id", u.ID), zap.Error(err))
	}
}

// issuePair signs an access and a refresh token for u in family and
// records the refresh token by its SHA-256, never in clear: a copy of the
// table gives no usable token, and only the exact token issued is
// accepted back (not another one signed with the same jti). Issuing also
// purges expired rows now and then, so a table whose sessions only ever
// refresh is purged too.
func (s *Portal) issuePair(ctx context.Context, u *storage.User, family string) (Pair, error) {
	sub := tokens.Subject{UserID: u.ID, Email: u.Email, Role: u.Role, PasswordStamp: u.PasswordChangedAt.UnixMicro()}
	access, err := s.Tokens.Issue(sub, tokens.Access, "")
	if err != nil {
		return Pair{}, err
	}
	refresh, err := s.Tokens.Issue(sub, tokens.Refresh, family)
	if err != nil {
		return Pair{}, err
	}
	rc := refresh.Claims
	row := &storage.RefreshToken{JTI: rc.ID, TokenHash: storage.HashRefreshToken(refresh.Token), FamilyID: family, UserID: u.ID,
		IssuedAt: rc.IssuedAt.Time, ExpiresAt: rc.ExpiresAt.Time}
	if err := s.Store.RefreshTokens.Insert(ctx, row); err != nil {
		return Pair{}, fmt.Errorf("recording refresh token of user %d: %w", u.ID, err)
	}
	s.purgeExpired(ctx)
	return Pair{
		AccessToken:      access.Token,
		RefreshToken:     refresh.Token,
		ExpiresIn:        int64(s.Tokens.AccessTTL() / time.Second),
		RefreshExpiresAt: rc.ExpiresAt.Time,
	}, nil
}

// Refresh spends a refresh token and returns a new pair of the same
// family. A token that was already spent is a sign it was stolen: the
// whole family is revoked, so neither the thief nor the user can go on
// with it, and the user logs in again.
func (s *Portal) Refresh(ctx context.Context, token string) (Pair, error) {
	c, err := s.Tokens.Parse(token, tokens.Refresh)
	if err != nil {
		s.logRefused(err)
		return Pair{}, err
	}
	hash := storage.HashRefreshToken(token)
	fresh, err := s.Store.RefreshTokens.MarkUsed(ctx, hash, s.now())
	if err != nil {
		return Pair{}, fmt.Errorf("spending refresh token: %w", err)
	}
	if !fresh {
		return Pair{}, s.spent(ctx, hash)
	}
	u, err := s.currentUser(ctx, c)
	if err != nil {
		if _, rerr := s.Store.RefreshTokens.RevokeFamily(ctx, c.Family, s.now()); rerr != nil {
			s.logger().Error("revoking the family of a refused refresh token failed", zap.Error(rerr))
		}
		return Pair{}, err
	}
	pair, err := s.issuePair(ctx, u, c.Family)
	if err != nil {
		return Pair{}, err
	}
	if s.Metrics.Refreshes != nil {
		s.Metrics.Refreshes.Inc()
	}
	return pair, nil
}

// spent answers a refresh token that MarkUsed refused: unknown (purged, or
// validly signed but not the token issued), revoked (logout, password
// change) or reused.
func (s *Portal) spent(ctx context.Context, hash string) error {
	row, err := s.Store.RefreshTokens.GetByHash(ctx, hash)
	if errors.Is(err, storage.ErrNotFound) {
		return apperr.New(apperr.Unauthenticated, "token_revoked", "the refresh token is no longer valid; log in again")
	}
	if err != nil {
		return fmt.Errorf("loading refresh token: %w", err)
	}
	if row.RevokedAt != nil {
		return apperr.New(apperr.Unauthenticated, "token_revoked", "the refresh token was revoked; log in again")
	}
	n, err := s.Store.RefreshTokens.RevokeFamily(ctx, row.FamilyID, s.now())
	if err != nil {
		return fmt.Errorf("revoking a reused refresh token's family: %w", err)
	}
	if s.Metrics.ReuseDetections != nil {
		s.Metrics.ReuseDetections.Inc()
	}
	s.logger().Warn("refresh token reused; its session was revoked", zap.Int64("user_id", row.UserID), zap.Int64("revoked", n))
	return apperr.New(apperr.Unauthenticated, "token_reused", "the refresh token was already used; the session is revoked, log in again")
}

// Logout revokes the session (refresh family) of a refresh token. An
// expired or already revoked token is fine: the session is over either
// way.
func (s *Portal) Logout(ctx context.Context, token string) error {
	c, err := s.Tokens.Parse(token, tokens.Refresh)
	if e, ok := apperr.As(err); ok && e.Code == "token_expired" {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := s.Store.RefreshTokens.RevokeFamily(ctx, c.Family, s.now()); err != nil {
		return fmt.Errorf("revoking session: %w", err)
	}
	return nil
}

// Authenticate checks an access token and returns who presents it. A
// valid signature is not enough: the user must still exist, be active,
// and have the password the token was issued under.
func (s *Portal) Authenticate(ctx context.Context, token string) (*Principal, error) {
	c, err := s.Tokens.Parse(token, tokens.Access)
	if err != nil {
		s.logRefused(err)
		return nil, err
	}
	u, err := s.currentUser(ctx, c)
	if err != nil {
		return nil, err
	}
	return &Principal{User: u, Claims: c}, nil
}

// currentUser loads the user a token speaks for and checks the token
// still may.
func (s *Portal) currentUser(ctx context.Context, c *tokens.Claims) (*storage.User, error) {
	id, err := strconv.ParseInt(c.Subject, 10, 64)
	if err != nil {
		return nil, apperr.New(apperr.Unauthenticated, "token_malformed", "the token's subject is not a user id")
	}
	u, err := s.Store.Users.GetByID(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, apperr.New(apperr.Unauthenticated, "token_user_unknown", "the token's user no longer exists")
	}
	if err != nil {
		return nil, fmt.Errorf("loading user %d: %w", id, err)
	}
	if !u.IsActive {
		return nil, apperr.New(apperr.Unauthenticated, "token_user_inactive", "the token's user is deactivated")
	}
	if c.PasswordStamp != u.PasswordChangedAt.UnixMicro() {
		return nil, apperr.New(apperr.Unauthenticated, "token_superseded", "the password changed after this token was issued; log in again")
	}
	return u, nil
}

// ChangePassword replaces the caller's password after checking the
// current one. Every session of the user ends, including this one, which
// gets a fresh pair in a new family in return.
func (s *Portal) ChangePassword(ctx context.Context, p *Principal, current, next, remoteAddr string) (Pair, error) {
	s.init()
	pair, err := s.changePassword(ctx, p, current, next, remoteAddr)
	outcome, details := storage.AuditSuccess, ""
	if err != nil {
		outcome, details = storage.AuditFailure, errorSummary(err)
	}
	if aerr := Audit(ctx, s.Store, Actor{Name: p.User.Email, RemoteAddr: remoteAddr}, "user.password_change", userTarget(p.User), outcome, details); aerr != nil {
		s.logger().Error("audit log write failed", zap.Error(aerr))
	}
	return pair, err
}

func (s *Portal) changePassword(ctx context.Context, p *Principal, current, next, remoteAddr string) (Pair, error) {
	u := p.User
	if err := CheckPassword(next); err != nil {
		return Pair{}, err
	}
	release, err := s.Pool.admit(s.now())
	if err != nil {
		return Pair{}, err
	}
	defer release()
	match, err := s.Pool.Compare(ctx, u.PasswordHash, current)
	if err != nil {
		return Pair{}, err
	}
	if !match {
		if err := s.loginFailed(ctx, u, remoteAddr, "wrong current password"); apperr.KindOf(err) == apperr.Internal {
			return Pair{}, err
		}
		return Pair{}, apperr.New(apperr.Forbidden, "wrong_password", "the current password is wrong")
	}
	hash, err := s.Pool.Hash(ctx, next, s.cost())
	if err != nil {
		return Pair{}, err
	}
	u.PasswordHash = hash
	u.PasswordChangedAt = s.now().UTC()
	if err := s.Store.Users.Update(ctx, u); err != nil {
		return Pair{}, fmt.Errorf("updating password of user %d: %w", u.ID, err)
	}
	if _, err := s.Store.RefreshTokens.RevokeAllForUser(ctx, u.ID, s.now()); err != nil {
		return Pair{}, fmt.Errorf("revoking sessions of user %d: %w", u.ID, err)
	}
	// Read back what the database stored: its time precision decides the
	// password stamp the new tokens must carry.
	stored, err := s.Store.Users.GetByID(ctx, u.ID)
	if err != nil {
		return Pair{}, fmt.Errorf("reloading user %d: %w", u.ID, err)
	}
	return s.issuePair(ctx, stored, uuid.NewString())
}

// purgeExpired deletes refresh tokens that expired (they can never be
// presented again), at most once per purgeInterval per node, riding on
// the issuing of tokens (login, refresh, password change) so no node
// needs a timer of its own: rows only accumulate where tokens are issued.
// A failure only delays the purge.
func (s *Portal) purgeExpired(ctx context.Context) {
	now := s.now()
	last := s.lastPurge.Load()
	if now.Unix()-last < int64(purgeInterval/time.Second) || !s.lastPurge.CompareAndSwap(last, now.Unix()) {
		return
	}
	n, err := s.Store.RefreshTokens.DeleteExpired(ctx, now)
	if err != nil {
		s.logger().Warn("purging expired refresh tokens failed", zap.Error(err))
		return
	}
	if n > 0 {
		s.logger().Info("purged expired refresh tokens", zap.Int64("count", n))
	}
}

func (s *Portal) logRefused(err error) {
	if e, ok := apperr.As(err); ok && e.Code == "token_expired" {
		s.logger().Warn("token expired")
	}
}

func (s *Portal) countLogin(outcome string) {
	if s.Metrics.Logins != nil {
		s.Metrics.Logins.WithLabelValues(outcome).Inc()
	}
}

func (s *Portal) countLockout() {
	if s.Metrics.Lockouts != nil {
		s.Metrics.Lockouts.Inc()
	}
}

func (s *Portal) logger() *zap.Logger {
	if s.Logger == nil {
		return zap.NewNop()
	}
	return s.Logger
}

func orInt(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func orDur(v, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return v
}
