package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/uptrace/bun"
)

// RefreshTokenRepo reads and writes the refresh_tokens table.
type RefreshTokenRepo struct {
	db *bun.DB
}

// HashRefreshToken is the stored form of a refresh token: the hex SHA-256
// of the token as issued. A token carries 128 bits of randomness (its jti)
// under a signature, so an unsalted fast hash cannot be reversed or
// guessed, and looking a row up by it in an index leaks nothing a timing
// attacker could use: what the index compares is a hash of the secret,
// which the attacker cannot steer byte by byte.
func HashRefreshToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Insert records an issued refresh token and sets t.ID. An unset IssuedAt
// defaults to now. A duplicate jti or token hash yields ErrConflict.
func (r *RefreshTokenRepo) Insert(ctx context.Context, t *RefreshToken) error {
	t.IssuedAt = orTime(t.IssuedAt, now())
	t.ExpiresAt = utc(t.ExpiresAt)
	t.UsedAt = utcPtr(t.UsedAt)
	t.RevokedAt = utcPtr(t.RevokedAt)
	if _, err := execWrite(ctx, r.db.NewInsert().Model(t)); err != nil {
		return dbError(err, "inserting refresh token %s", t.JTI)
	}
	return nil
}

// GetByHash returns the token whose HashRefreshToken is tokenHash, or
// ErrNotFound.
func (r *RefreshTokenRepo) GetByHash(ctx context.Context, tokenHash string) (*RefreshToken, error) {
	t := new(RefreshToken)
	if err := r.db.NewSelect().Model(t).Where("token_hash = ?", tokenHash).Scan(ctx); err != nil {
		return nil, dbError(err, "getting refresh token by hash")
	}
	return t, nil
}

// MarkUsed marks the token with the given hash used at time at if it is
// neither used nor revoked yet, in one UPDATE, and reports whether it did.
// When two requests present the same token only one wins; false means the
// token was already spent (reuse: the caller should revoke the family) or
// was never issued as presented. Expiry is the caller's check: it is part
// of the signed token.
func (r *RefreshTokenRepo) MarkUsed(ctx context.Context, tokenHash string, at time.Time) (bool, error) {
	q := r.db.NewUpdate().Model((*RefreshToken)(nil)).
		Set("used_at = ?", orTime(at, now())).
		Where("token_hash = ?", tokenHash).
		Where("used_at IS NULL").
		Where("revoked_at IS NULL")
	res, err := execWrite(ctx, q)
	if err != nil {
		return false, dbError(err, "marking a refresh token used")
	}
	used, err := affectedOne(res)
	if err != nil {
		return false, dbError(err, "marking a refresh token used")
	}
	return used, nil
}

// RevokeFamily revokes every not yet revoked token of a family and returns
// how many it revoked.
func (r *RefreshTokenRepo) RevokeFamily(ctx context.Context, familyID string, at time.Time) (int64, error) {
	n, err := r.revoke(ctx, "family_id = ?", familyID, at)
	if err != nil {
		return 0, dbError(err, "revoking refresh token family %s", familyID)
	}
	return n, nil
}

// RevokeAllForUser revokes every not yet revoked token of a user (logout
// everywhere, password change, deactivation) and returns how many it
// revoked.
func (r *RefreshTokenRepo) RevokeAllForUser(ctx context.Context, userID int64, at time.Time) (int64, error) {
	n, err := r.revoke(ctx, "user_id = ?", userID, at)
	if err != nil {
		return 0, dbError(err, "revoking refresh tokens of user %d", userID)
	}
	return n, nil
}

func (r *RefreshTokenRepo) revoke(ctx context.Context, where string, arg any, at time.Time) (int64, error) {
	q := r.db.NewUpdate().Model((*RefreshToken)(nil)).
		Set("revoked_at = ?", orTime(at, now())).
		Where(where, arg).
		Where("revoked_at IS NULL")
	res, err := execWrite(ctx, q)
	if err != nil {
		return 0, dbError(err, "revoking refresh tokens")
	}
	return res.RowsAffected()
}

// DeleteExpired removes tokens that expired before the given time and
// returns how many it removed.
func (r *RefreshTokenRepo) DeleteExpired(ctx context.Context, before time.Time) (int64, error) {
	res, err := execWrite(ctx, r.db.NewDelete().Model((*RefreshToken)(nil)).Where("expires_at < ?", utc(before)))
	if err != nil {
		return 0, dbError(err, "deleting refresh tokens expired before %s", before.UTC().Format(time.RFC3339))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, dbError(err, "deleting refresh tokens expired before %s", before.UTC().Format(time.RFC3339))
	}
	return n, nil
}
