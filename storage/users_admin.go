package storage

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
)

// UpdateUnlessLastAdmin writes u as Update does, unless u is now the last
// active administrator and the change would demote or deactivate it
// (ErrLastAdmin). As in DeleteUnlessLastAdmin, the check and the write run
// in one transaction that locks the active administrators' rows (MySQL)
// or takes the write lock at BEGIN (SQLite's immediate transactions), so
// two administrators demoting each other at the same instant cannot both
// succeed.
func (r *UserRepo) UpdateUnlessLastAdmin(ctx context.Context, u *User) error {
	return r.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if u.Role != RoleAdmin || !u.IsActive {
			admins, err := lockActiveAdmins(ctx, tx)
			if err != nil {
				return err
			}
			if len(admins) == 1 && admins[0] == u.ID {
				return fmt.Errorf("updating user %d: %w", u.ID, ErrLastAdmin)
			}
		}
		u.Email = normalizeEmail(u.Email)
		u.PasswordChangedAt = orTime(u.PasswordChangedAt, now())
		u.UpdatedAt = now()
		res, err := tx.NewUpdate().Model(u).
			Column("email", "role", "client_id", "is_active", "password_hash", "password_changed_at", "updated_at").
			WherePK().Exec(ctx)
		if err != nil {
			return dbError(err, "updating user %d", u.ID)
		}
		return requireRow(res, "updating user %d", u.ID)
	})
}

// lockActiveAdmins returns the ids of the active administrators, locking
// their rows until the transaction ends on MySQL.
func lockActiveAdmins(ctx context.Context, tx bun.Tx) ([]int64, error) {
	var admins []int64
	q := tx.NewSelect().Model((*User)(nil)).Column("id").
		Where("role = ?", RoleAdmin).Where("is_active = ?", true)
	if tx.Dialect().Name().String() == DriverMySQL {
		q = q.For("UPDATE")
	}
	if err := q.Scan(ctx, &admins); err != nil {
		return nil, dbError(err, "locking administrators")
	}
	return admins, nil
}
