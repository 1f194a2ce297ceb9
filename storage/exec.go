package storage

import (
	"context"
	"database/sql"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Deadlock retry policy for execWrite.
const (
	maxDeadlockAttempts = 8
	deadlockBackoff     = 5 * time.Millisecond
)

// mysqlDeadlock is ER_LOCK_DEADLOCK.
const mysqlDeadlock = 1213

// execer is a bun INSERT, UPDATE or DELETE query.
type execer interface {
	Exec(ctx context.Context, dest ...any) (sql.Result, error)
}

// execWrite runs a single-statement write. Even a lone autocommit UPDATE
// can be chosen as an InnoDB deadlock victim when concurrent statements
// take gap locks on a secondary index in different orders (which index is
// used depends on the optimizer). InnoDB rolls the whole statement back, so
// running it again is safe and keeps compare-and-set semantics; it is
// retried a few times with a jittered, growing pause.
func execWrite(ctx context.Context, q execer) (sql.Result, error) {
	for attempt := 1; ; attempt++ {
		res, err := q.Exec(ctx)
		if err == nil || attempt == maxDeadlockAttempts || !isDeadlock(err) {
			return res, err
		}
		pause := time.Duration(attempt)*deadlockBackoff + rand.N(deadlockBackoff)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(pause):
		}
	}
}

// isDeadlock reports whether MySQL aborted the statement to break a
// deadlock.
func isDeadlock(err error) bool {
	var myErr *mysql.MySQLError
	return errors.As(err, &myErr) && myErr.Number == mysqlDeadlock
}
