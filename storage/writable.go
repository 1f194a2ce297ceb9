package storage

import (
	"context"
	"database/sql/driver"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
)

// ErrFileGone is the cause of the commits a fileGuard vetoes.
var ErrFileGone = apperr.New(apperr.Unavailable, "service_unavailable",
	"the database file was removed or replaced since it was opened; restart the gateway to reopen it")

// fileGuard stops writes to a SQLite file that is no longer at its path.
// SQLite keeps writing to a deleted file's inode (in WAL mode without any
// error), so a gateway whose database was deleted or replaced would
// acknowledge messages into a file nobody can read again. The guard vetoes
// every commit once the path no longer names the file that was opened.
type fileGuard struct {
	path   string
	opened os.FileInfo
	gone   atomic.Bool
}

func newFileGuard(path string) (*fileGuard, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("opening sqlite database %s: %w", path, err)
	}
	return &fileGuard{path: path, opened: info}, nil
}

// check returns ErrFileGone when the path no longer names the opened file.
// Once gone, always gone: a new file at the path is not this database.
func (g *fileGuard) check() error {
	if g.gone.Load() {
		return ErrFileGone
	}
	info, err := os.Stat(g.path)
	if err == nil && os.SameFile(info, g.opened) {
		return nil
	}
	g.gone.Store(true)
	return ErrFileGone
}

// allowCommit is the SQLite commit hook: non-zero turns the commit into a
// rollback, which the statement reports as SQLITE_CONSTRAINT_COMMITHOOK.
func (g *fileGuard) allowCommit() int32 {
	if g.check() != nil {
		return 1
	}
	return 0
}

// guardedDriver is the SQLite driver of one database, with its guard, so
// that CheckWritable finds the guard from the pool alone.
type guardedDriver struct {
	*sqlite.Driver
	guard *fileGuard
}

func newGuardedDriver(guard *fileGuard) *guardedDriver {
	d := &guardedDriver{Driver: &sqlite.Driver{}, guard: guard}
	d.RegisterConnectionHook(func(c sqlite.ExecQuerierContext, _ string) error {
		hooked, ok := c.(interface{ RegisterCommitHook(sqlite.CommitHookFn) })
		if !ok {
			return fmt.Errorf("the sqlite driver offers no commit hook")
		}
		hooked.RegisterCommitHook(guard.allowCommit)
		return nil
	})
	return d
}

// connector opens connections of one DSN with one driver.
type connector struct {
	driver driver.Driver
	name   string
}

func (c connector) Connect(context.Context) (driver.Conn, error) { return c.driver.Open(c.name) }
func (c connector) Driver() driver.Driver                        { return c.driver }

// probeID is the one row of health_probe.
const probeID = 1

// CheckWritable tells whether the database takes writes now: its SQLite file
// is still the one opened, and a one-row write commits. A ping is not
// enough: a full disk, a read-only server or a deleted file all answer
// pings. The error is classified like every storage error (Unavailable for
// those conditions).
func (s *Store) CheckWritable(ctx context.Context) error {
	if gd, ok := s.DB.Driver().(*guardedDriver); ok {
		if err := gd.guard.check(); err != nil {
			return err
		}
	}
	at := time.Now().UTC()
	res, err := s.DB.ExecContext(ctx, "UPDATE health_probe SET checked_at = ? WHERE id = ?", at, probeID)
	if err != nil {
		return dbError(err, "writing the health probe")
	}
	if n, err := res.RowsAffected(); err == nil && n > 0 {
		return nil
	}
	_, err = s.DB.ExecContext(ctx, "INSERT INTO health_probe (id, checked_at) VALUES (?, ?)", probeID, at)
	if err != nil && !isUniqueViolation(err) {
		return dbError(err, "writing the health probe")
	}
	return nil
}
