package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/uptrace/bun"
)

// UserRepo reads and writes the users table. Emails are stored lowercased
// and looked up case-insensitively.
type UserRepo struct {
	db *bun.DB
}

// normalizeEmail is the stored form of an email address.
func normalizeEmail(email string) string {
	return strings.ToLower(strings.TrimSpace(email))
}

// Create stores a new user and sets u.ID. The email is lowercased, an empty
// role becomes RoleUser, and unset timestamps default to now. IsActive is
// stored as given, so set it for an account that may log in. A duplicate
// email yields ErrConflict.
func (r *UserRepo) Create(ctx context.Context, u *User) error {
	t := now()
	u.Email = normalizeEmail(u.Email)
	if u.Role == "" {
		u.Role = RoleUser
	}
	u.PasswordChangedAt = orTime(u.PasswordChangedAt, t)
	u.CreatedAt = orTime(u.CreatedAt, t)
	u.UpdatedAt = orTime(u.UpdatedAt, t)
	u.LockedUntil = utcPtr(u.LockedUntil)
	u.LastLoginAt = utcPtr(u.LastLoginAt)
	if _, err := execWrite(ctx, r.db.NewInsert().Model(u)); err != nil {
		return dbError(err, "creating user %s", u.Email)
	}
	return nil
}

// GetByID returns the user with the given id or ErrNotFound.
func (r *UserRepo) GetByID(ctx context.Context, id int64) (*User, error) {
	u := new(User)
	if err := r.db.NewSelect().Model(u).Where("id = ?", id).Scan(ctx); err != nil {
		return nil, dbError(err, "getting user %d", id)
	}
	return u, nil
}

// GetByEmail returns the user with the given email, ignoring case, or
// ErrNotFound.
func (r *UserRepo) GetByEmail(ctx context.Context, email string) (*User, error) {
	email = normalizeEmail(email)
	u := new(User)
	if err := r.db.NewSelect().Model(u).Where("email = ?", email).Scan(ctx); err != nil {
		return nil, dbError(err, "getting user %s", email)
	}
	return u, nil
}

// List returns all users ordered by id.
func (r *UserRepo) List(ctx context.Context) ([]User, error) {
	var users []User
	if err := r.db.NewSelect().Model(&users).OrderExpr("id ASC").Scan(ctx); err != nil {
		return nil, dbError(err, "listing users")
	}
	return users, nil
}

// Update writes u's email, role, client id, active flag, password hash and
// password change time, and sets updated_at. It returns ErrNotFound if the
// user does not exist and ErrConflict if the email is taken.
func (r *UserRepo) Update(ctx context.Context, u *User) error {
	u.Email = normalizeEmail(u.Email)
	u.PasswordChangedAt = orTime(u.PasswordChangedAt, now())
	u.UpdatedAt = now()
	q := r.db.NewUpdate().Model(u).
		Column("email", "role", "client_id", "is_active", "password_hash", "password_changed_at", "updated_at").
		WherePK()
	res, err := execWrite(ctx, q)
	if err != nil {
		return dbError(err, "updating user %d", u.ID)
	}
	return requireRow(res, "updating user %d", u.ID)
}

// Delete removes the user, and with it (by cascade) the user's refresh
// tokens. It returns ErrNotFound if the user does not exist.
func (r *UserRepo) Delete(ctx context.Context, id int64) error {
	res, err := execWrite(ctx, r.db.NewDelete().Model((*User)(nil)).Where("id = ?", id))
	if err != nil {
		return dbError(err, "deleting user %d", id)
	}
	return requireRow(res, "deleting user %d", id)
}

// CountByRole returns the number of users per role; roles without users are
// absent.
func (r *UserRepo) CountByRole(ctx context.Context) (map[string]int64, error) {
	var rows []countRow
	err := r.db.NewSelect().Model((*User)(nil)).
		ColumnExpr("role AS label").
		ColumnExpr("COUNT(*) AS total").
		Group("role").
		Scan(ctx, &rows)
	if err != nil {
		return nil, dbError(err, "counting users by role")
	}
	return countMap(rows), nil
}

// RecordLoginFailure counts a failed login at time at, atomically. When the
// count reaches maxFailures the account is locked until at+lockout and the
// count starts again from zero, so after the lockout the user has
// maxFailures fresh attempts. maxFailures < 1 disables locking. It returns
// the updated user, or ErrNotFound.
func (r *UserRepo) RecordLoginFailure(ctx context.Context, id int64, maxFailures int, lockout time.Duration, at time.Time) (*User, error) {
	at = orTime(at, now())
	q := r.db.NewUpdate().Model((*User)(nil))
	if maxFailures < 1 {
		q = q.Set("failed_logins = failed_logins + 1")
	} else {
		// locked_until must be assigned first: MySQL evaluates SET
		// assignments left to right and would otherwise see the already
		// incremented failed_logins, while SQLite always sees the old one.
		q = q.Set("locked_until = CASE WHEN failed_logins + 1 >= ? THEN ? ELSE locked_until END", maxFailures, utc(at.Add(lockout))).
			Set("failed_logins = CASE WHEN failed_logins + 1 >= ? THEN 0 ELSE failed_logins + 1 END", maxFailures)
	}
	res, err := execWrite(ctx, q.Set("updated_at = ?", at).Where("id = ?", id))
	if err != nil {
		return nil, dbError(err, "recording login failure of user %d", id)
	}
	if err := requireRow(res, "recording login failure of user %d", id); err != nil {
		return nil, err
	}
	return r.GetByID(ctx, id)
}

// ResetLoginFailures records a successful login at time at: it clears the
// failure count and any lock and sets last_login_at. It returns ErrNotFound
// if the user does not exist.
func (r *UserRepo) ResetLoginFailures(ctx context.Context, id int64, at time.Time) error {
	at = orTime(at, now())
	q := r.db.NewUpdate().Model((*User)(nil)).
		Set("failed_logins = 0").
		Set("locked_until = NULL").
		Set("last_login_at = ?", at).
		Set("updated_at = ?", at).
		Where("id = ?", id)
	res, err := execWrite(ctx, q)
	if err != nil {
		return dbError(err, "resetting login failures of user %d", id)
	}
	return requireRow(res, "resetting login failures of user %d", id)
}

// LockUntil locks the account until the given time, or unlocks it (and
// clears the failure count) when until is zero. It returns ErrNotFound if
// the user does not exist.
func (r *UserRepo) LockUntil(ctx context.Context, id int64, until time.Time) error {
	q := r.db.NewUpdate().Model((*User)(nil))
	if until.IsZero() {
		q = q.Set("locked_until = NULL").Set("failed_logins = 0")
	} else {
		q = q.Set("locked_until = ?", utc(until))
	}
	res, err := execWrite(ctx, q.Set("updated_at = ?", now()).Where("id = ?", id))
	if err != nil {
		return dbError(err, "locking user %d", id)
	}
	return requireRow(res, "locking user %d", id)
}

// ErrLastAdmin is returned by DeleteUnlessLastAdmin for the last active
// administrator.
var ErrLastAdmin = errors.New("the last active administrator")

// DeleteUnlessLastAdmin deletes the user with id unless it is the last
// active administrator. The check and the delete run in one transaction
// that locks the administrators' rows (MySQL) or the database (SQLite's
// immediate transactions), so two concurrent deletions cannot each see the
// other admin and remove both.
func (r *UserRepo) DeleteUnlessLastAdmin(ctx context.Context, id int64) error {
	return r.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		admins, err := lockActiveAdmins(ctx, tx)
		if err != nil {
			return err
		}
		if len(admins) == 1 && admins[0] == id {
			return fmt.Errorf("deleting user %d: %w", id, ErrLastAdmin)
		}
		res, err := tx.NewDelete().Model((*User)(nil)).Where("id = ?", id).Exec(ctx)
		if err != nil {
			return dbError(err, "deleting user %d", id)
		}
		return requireRow(res, "deleting user %d", id)
	})
}
