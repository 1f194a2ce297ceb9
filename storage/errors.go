package storage

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"

	"github.com/go-sql-driver/mysql"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Storage classifies its own errors into the broker's one error type, so
// that nothing above it needs to know a driver: the repositories return
// (wrapped) ErrNotFound, ErrConflict or an apperr.Unavailable error where
// the driver's error means that, and callers test them with errors.Is or
// apperr.KindOf. Callers usually replace not-found and conflict with an
// error that names what was not found.
var (
	// ErrNotFound means no row matched.
	ErrNotFound = apperr.New(apperr.NotFound, "not_found", "not found")
	// ErrConflict means the write would violate a unique constraint or a
	// state precondition (for example revoking a revoked certificate).
	ErrConflict = apperr.New(apperr.Conflict, "conflict", "conflict")
)

// mysqlDuplicateEntry is ER_DUP_ENTRY, raised for unique and primary keys.
const mysqlDuplicateEntry = 1062

// dbError wraps err with the operation described by format and args, and
// classifies it: ErrNotFound, ErrConflict or an Unavailable apperr where the
// driver error means that.
func dbError(err error, format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), classify(err))
}

// classify puts err into the apperr kind its driver error means.
func classify(err error) error {
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return ErrNotFound
	case isUniqueViolation(err):
		return fmt.Errorf("%w: %w", ErrConflict, err)
	case IsUnavailable(err):
		return apperr.Wrap(err, apperr.Unavailable, "service_unavailable",
			"the database is unavailable; retry later")
	}
	return err
}

// isUniqueViolation reports whether err is a unique or primary key violation
// from either driver.
func isUniqueViolation(err error) bool {
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) {
		return myErr.Number == mysqlDuplicateEntry
	}
	var liteErr *sqlite.Error
	if errors.As(err, &liteErr) {
		code := liteErr.Code()
		return code == sqlite3.SQLITE_CONSTRAINT_UNIQUE || code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

// affectedOne reports whether res touched at least one row.
func affectedOne(res sql.Result) (bool, error) {
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	return n > 0, nil
}

// requireRow turns an UPDATE or DELETE that matched no row into ErrNotFound.
func requireRow(res sql.Result, format string, args ...any) error {
	ok, err := affectedOne(res)
	if err != nil {
		return dbError(err, format, args...)
	}
	if !ok {
		return dbError(sql.ErrNoRows, format, args...)
	}
	return nil
}

// IsUnavailable reports whether err means the database could not be
// reached or did not answer in time — a condition to retry later (503),
// not a bug in the request (4xx) or the server (500).
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var netErr net.Error
	var liteErr *sqlite.Error
	switch {
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, mysql.ErrInvalidConn),
		errors.Is(err, sql.ErrConnDone), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, ErrMigrationLocked):
		return true
	case errors.As(err, &netErr):
		return true
	case errors.As(err, &liteErr):
		if liteErr.Code() == sqlite3.SQLITE_CONSTRAINT_COMMITHOOK { // vetoed by the fileGuard
			return true
		}
		switch liteErr.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, // another writer holds the file
			sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN: // disk full, read-only or failing
			return true
		}
		return false
	}
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) {
		switch myErr.Number {
		case 1040, 1045, 1203, 1205, 1226, 2002, 2003, 2006, 2013, 3024, 3118, 4031, 4151: // too many connections, access denied or locked, lock wait timeout, gone away, lost connection, timeout
			return true
		case 3, 1021, 1114, 1036, 1290, 1792: // error writing a file, disk full, table full, read-only table, read-only server, read-only transaction
			return true
		}
	}
	return false
}
