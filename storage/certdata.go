package storage

import (
	"context"
	"time"

	"github.com/uptrace/bun"
)

// CertDatum is one value of Caddy's certificate storage (certificates,
// their keys and metadata, the pki CA's keys): a row of certmagic_data.
type CertDatum struct {
	bun.BaseModel `bun:"table:certmagic_data"`

	Key      string    `bun:"key,pk"`
	Value    []byte    `bun:"value,notnull"`
	Modified time.Time `bun:"modified,notnull"`
}

// certLock is a row of certmagic_locks: a named lock, who holds it and
// until when. A lock past expires_at is free for anyone to take.
type certLock struct {
	bun.BaseModel `bun:"table:certmagic_locks"`

	Name      string    `bun:"name,pk"`
	Owner     string    `bun:"owner,notnull"`
	ExpiresAt time.Time `bun:"expires_at,notnull"`
}

// CertEntry is a stored key with its size and modification time, the
// value left in the database.
type CertEntry struct {
	Key      string    `bun:"key"`
	Size     int64     `bun:"size"`
	Modified time.Time `bun:"modified"`
}

// CertDataRepo holds Caddy's certificate storage: a flat key space whose
// keys are slash-separated paths ("certificates/<issuer>/<name>/<name>.crt"),
// and the named locks nodes take around certificate operations.
//
// Keys are compared byte for byte: MySQL's column has a binary collation,
// SQLite compares BLOB-wise by default. Callers validate keys; a key of
// MySQL's padded collation that differs only in trailing spaces must not
// reach here.
type CertDataRepo struct {
	db *bun.DB
}

// Put stores value at key, replacing what was there.
func (r *CertDataRepo) Put(ctx context.Context, key string, value []byte) error {
	row := &CertDatum{Key: key, Value: value, Modified: now()}
	if row.Value == nil {
		row.Value = []byte{} // NOT NULL: an empty value is a value
	}
	q := r.db.NewInsert().Model(row)
	if Dialect(r.db) == DriverMySQL {
		q = q.On("DUPLICATE KEY UPDATE").Set("value = VALUES(value)").Set("modified = VALUES(modified)")
	} else {
		q = q.On(`CONFLICT ("key") DO UPDATE`).Set("value = EXCLUDED.value").Set("modified = EXCLUDED.modified")
	}
	if _, err := execWrite(ctx, q); err != nil {
		return dbError(err, "storing %q", key)
	}
	return nil
}

// Get returns the value stored at key, or ErrNotFound.
func (r *CertDataRepo) Get(ctx context.Context, key string) (*CertDatum, error) {
	row := new(CertDatum)
	if err := r.db.NewSelect().Model(row).Where("? = ?", keyColumn, key).Scan(ctx); err != nil {
		return nil, dbError(err, "loading %q", key)
	}
	return row, nil
}

// Entry returns the size and modification time of the value at key, or
// ErrNotFound.
func (r *CertDataRepo) Entry(ctx context.Context, key string) (CertEntry, error) {
	var e CertEntry
	err := r.db.NewSelect().Model((*CertDatum)(nil)).
		Column("key", "modified").ColumnExpr("LENGTH(value) AS size").
		Where("? = ?", keyColumn, key).Scan(ctx, &e)
	if err != nil {
		return CertEntry{}, dbError(err, "reading %q", key)
	}
	return e, nil
}

// Under returns the keys below dir (dir "" is the root), in byte order,
// with sizes and modification times. A key equal to dir is not below it.
func (r *CertDataRepo) Under(ctx context.Context, dir string) ([]CertEntry, error) {
	var entries []CertEntry
	q := r.db.NewSelect().Model((*CertDatum)(nil)).
		Column("key", "modified").ColumnExpr("LENGTH(value) AS size").Order("key")
	if dir != "" {
		q = whereBelow(q, dir)
	}
	if err := q.Scan(ctx, &entries); err != nil {
		return nil, dbError(err, "listing %q", dir)
	}
	return entries, nil
}

// AnyOf returns the first of keys that is stored, or "" when none is.
func (r *CertDataRepo) AnyOf(ctx context.Context, keys []string) (string, error) {
	if len(keys) == 0 {
		return "", nil
	}
	var found []string
	err := r.db.NewSelect().Model((*CertDatum)(nil)).Column("key").
		Where("? IN (?)", keyColumn, bun.List(keys)).Order("key").Limit(1).Scan(ctx, &found)
	if err != nil {
		return "", dbError(err, "looking up %v", keys)
	}
	if len(found) == 0 {
		return "", nil
	}
	return found[0], nil
}

// HasUnder reports whether any key is stored below dir.
func (r *CertDataRepo) HasUnder(ctx context.Context, dir string) (bool, error) {
	ok, err := whereBelow(r.db.NewSelect().Model((*CertDatum)(nil)), dir).Exists(ctx)
	if err != nil {
		return false, dbError(err, "looking below %q", dir)
	}
	return ok, nil
}

// DeleteTree deletes key and every key below it, and returns how many
// values it deleted.
func (r *CertDataRepo) DeleteTree(ctx context.Context, key string) (int64, error) {
	q := r.db.NewDelete().Model((*CertDatum)(nil)).WhereGroup(" AND ", func(q *bun.DeleteQuery) *bun.DeleteQuery {
		lo, hi := belowRange(key)
		return q.Where("? = ?", keyColumn, key).WhereOr("? >= ? AND ? < ?", keyColumn, lo, keyColumn, hi)
	})
	res, err := execWrite(ctx, q)
	if err != nil {
		return 0, dbError(err, "deleting %q", key)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, dbError(err, "deleting %q", key)
	}
	return n, nil
}

// keyColumn is certmagic_data.key, quoted for the dialect (KEY is a
// reserved word in MySQL).
var keyColumn = bun.Ident("key")

// belowRange returns the half-open byte range of the keys below dir:
// everything that starts with dir + "/" sorts at or after dir + "/" and
// before dir + "0", '0' being the byte after '/'. A range, unlike LIKE,
// needs no escaping and is case-sensitive on SQLite too.
func belowRange(dir string) (lo, hi string) {
	return dir + "/", dir + "0"
}

// whereBelow restricts q to the keys below dir.
func whereBelow(q *bun.SelectQuery, dir string) *bun.SelectQuery {
	lo, hi := belowRange(dir)
	return q.Where("? >= ? AND ? < ?", keyColumn, lo, keyColumn, hi)
}

// TryLock takes the lock name for owner until ttl from now, and reports
// whether it got it: false while another owner holds it unexpired. A lock
// whose holder let it expire is taken over. On MySQL the database's clock
// decides expiry, so nodes whose clocks differ still agree; SQLite serves
// one machine, whose clock is the one in use.
func (r *CertDataRepo) TryLock(ctx context.Context, name, owner string, ttl time.Duration) (bool, error) {
	expired := r.db.NewDelete().Model((*certLock)(nil)).Where("name = ?", name).Where("expires_at < ?", r.clockNow())
	if _, err := execWrite(ctx, expired); err != nil {
		return false, dbError(err, "clearing expired lock %q", name)
	}
	_, err := execWrite(ctx, r.db.NewRaw("INSERT INTO certmagic_locks (name, owner, expires_at) VALUES (?, ?, ?)",
		name, owner, r.clockIn(ttl)))
	switch {
	case err == nil:
		return true, nil
	case isUniqueViolation(err), isDeadlock(err):
		// Held by someone else; or, under contention, InnoDB chose this
		// insert as a deadlock victim even after execWrite's retries:
		// another node is taking the lock right now.
		return false, nil
	default:
		return false, dbError(err, "taking lock %q", name)
	}
}

// ExtendLock moves the expiry of owner's lock name to at least ttl from
// now (it never shortens it), and reports whether owner still held it.
func (r *CertDataRepo) ExtendLock(ctx context.Context, name, owner string, ttl time.Duration) (bool, error) {
	later := "GREATEST(expires_at, ?)"
	if Dialect(r.db) == DriverSQLite {
		later = "MAX(expires_at, ?)"
	}
	q := r.db.NewUpdate().Model((*certLock)(nil)).Set("expires_at = "+later, r.clockIn(ttl)).
		Where("name = ?", name).Where("owner = ?", owner)
	return r.writeOne(ctx, q, "extending lock %q", name)
}

// Unlock releases owner's lock name and reports whether owner held it.
func (r *CertDataRepo) Unlock(ctx context.Context, name, owner string) (bool, error) {
	q := r.db.NewDelete().Model((*certLock)(nil)).Where("name = ?", name).Where("owner = ?", owner)
	return r.writeOne(ctx, q, "releasing lock %q", name)
}

// LockHolder returns who holds the lock name and until when, or ErrNotFound.
func (r *CertDataRepo) LockHolder(ctx context.Context, name string) (owner string, expires time.Time, err error) {
	row := new(certLock)
	if err := r.db.NewSelect().Model(row).Where("name = ?", name).Scan(ctx); err != nil {
		return "", time.Time{}, dbError(err, "reading lock %q", name)
	}
	return row.Owner, row.ExpiresAt, nil
}

// writeOne runs a write of one row by its key and reports whether it
// touched it.
func (r *CertDataRepo) writeOne(ctx context.Context, q execer, format string, args ...any) (bool, error) {
	res, err := execWrite(ctx, q)
	if err != nil {
		return false, dbError(err, format, args...)
	}
	ok, err := affectedOne(res)
	if err != nil {
		return false, dbError(err, format, args...)
	}
	return ok, nil
}

// clockNow is the current time by the clock that decides lock expiry.
func (r *CertDataRepo) clockNow() any {
	if Dialect(r.db) == DriverMySQL {
		return bun.Safe("UTC_TIMESTAMP(6)")
	}
	return now()
}

// clockIn is ttl from now by the clock that decides lock expiry.
func (r *CertDataRepo) clockIn(ttl time.Duration) any {
	if Dialect(r.db) == DriverMySQL {
		return bun.SafeQuery("UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND", ttl.Microseconds())
	}
	return utc(time.Now().Add(ttl))
}

// Values returns every stored value with its key, in key order. The table
// holds a deployment's certificates and CA: dozens of rows, read whole
// only by key rotation.
func (r *CertDataRepo) Values(ctx context.Context) ([]CertDatum, error) {
	var rows []CertDatum
	if err := r.db.NewSelect().Model(&rows).Order("key").Scan(ctx); err != nil {
		return nil, dbError(err, "reading the certificate storage")
	}
	return rows, nil
}

// ReplaceValue sets the value at key to value if it is still old, keeping
// its modification time (the content is the same, re-encrypted), and
// reports whether it did: false when the value changed meanwhile.
func (r *CertDataRepo) ReplaceValue(ctx context.Context, key string, old, value []byte) (bool, error) {
	q := r.db.NewUpdate().Model((*CertDatum)(nil)).Set("value = ?", value).
		Where("? = ?", keyColumn, key).Where("value = ?", old)
	return r.writeOne(ctx, q, "re-encrypting %q", key)
}
