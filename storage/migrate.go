package storage

import (
	"cmp"
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"
)

// migrationFiles holds the schema, one directory per dialect. A migration is
// a pair of files per dialect with the same zero-padded version and name:
// NNNN_name.up.sql and NNNN_name.down.sql under migrations/mysql, and
// NNNN_name.tx.up.sql and NNNN_name.tx.down.sql under migrations/sqlite.
// Statements are separated by a "--bun:split" line, since go-sql-driver
// runs only one statement per call. The SQLite files run in a
// transaction; MySQL commits DDL implicitly, so a transaction there would
// only pretend to be atomic.
//
//go:embed migrations/mysql/*.sql migrations/sqlite/*.sql
var migrationFiles embed.FS

// ErrMigrationLocked is returned when another process holds the migration
// lock for longer than Migrate or MigrateDown is willing to wait.
var ErrMigrationLocked = errors.New("migrations are locked by another process")

const (
	// migrationLockWait bounds how long a node waits for another node's
	// migration to finish; the context may cut it shorter.
	migrationLockWait = 2 * time.Minute
	// migrationLockPoll is the interval between attempts to take the lock.
	migrationLockPoll = 250 * time.Millisecond
	// migrationUnlockTimeout bounds releasing the lock, which runs even after
	// the caller's context is done: a lock left behind blocks every later
	// start until someone deletes it by hand.
	migrationUnlockTimeout = 10 * time.Second
)

// MigrationState describes one migration as seen in the database.
type MigrationState struct {
	// Name is the version and description, e.g. "0001_base_schema".
	Name string
	// Applied reports whether the migration has been applied.
	Applied bool
	// AppliedAt is when it was applied (UTC), zero if it was not.
	AppliedAt time.Time
	// Unknown marks a migration recorded in the database whose files are not
	// embedded in this binary, i.e. it was applied by a newer version.
	Unknown bool
}

// Migrate applies all pending migrations in order and returns their names.
// Each migration is recorded as its own bun migration group, so MigrateDown
// can undo them one at a time. Concurrent callers (several nodes starting
// together) serialise on bun's migration lock; the later ones then find
// nothing left to do.
//
// A migration is recorded only once all its statements succeeded. On SQLite
// a failed migration leaves nothing behind; on MySQL the statements before
// the failing one stay applied and must be repaired by hand.
func Migrate(ctx context.Context, db *bun.DB) ([]string, error) {
	all, err := loadMigrations(db)
	if err != nil {
		return nil, err
	}
	m := newMigrator(db, all)

	var applied []string
	err = withMigrationLock(ctx, m, func() error {
		status, err := m.MigrationsWithStatus(ctx)
		if err != nil {
			return fmt.Errorf("reading migration status: %w", err)
		}
		for _, mig := range status.Unapplied() {
			if _, err := newMigrator(db, single(mig)).Migrate(ctx); err != nil {
				return fmt.Errorf("applying migration %s: %w", mig, err)
			}
			applied = append(applied, mig.String())
		}
		return nil
	})
	return applied, err
}

// MigrateDown rolls back the last steps applied migrations, newest first,
// and returns their names. It stops early when nothing is left to roll back
// and refuses to run while the database holds migrations this binary does
// not know, since rolling back underneath them would corrupt the schema.
func MigrateDown(ctx context.Context, db *bun.DB, steps int) ([]string, error) {
	if steps < 1 {
		return nil, fmt.Errorf("rolling back migrations: steps must be at least 1, got %d", steps)
	}
	all, err := loadMigrations(db)
	if err != nil {
		return nil, err
	}
	m := newMigrator(db, all)

	var rolledBack []string
	err = withMigrationLock(ctx, m, func() error {
		if err := refuseUnknown(ctx, m); err != nil {
			return err
		}
		for range steps {
			status, err := m.MigrationsWithStatus(ctx)
			if err != nil {
				return fmt.Errorf("reading migration status: %w", err)
			}
			last, ok := lastApplied(status)
			if !ok {
				return nil
			}
			if _, err := newMigrator(db, single(last)).Rollback(ctx); err != nil {
				return fmt.Errorf("rolling back migration %s: %w", last, err)
			}
			rolledBack = append(rolledBack, last.String())
		}
		return nil
	})
	return rolledBack, err
}

// MigrationStatus lists every known migration in order, followed by any
// applied migration unknown to this binary.
func MigrationStatus(ctx context.Context, db *bun.DB) ([]MigrationState, error) {
	all, err := loadMigrations(db)
	if err != nil {
		return nil, err
	}
	m := newMigrator(db, all)
	if err := m.Init(ctx); err != nil {
		return nil, fmt.Errorf("creating migration tables: %w", err)
	}
	status, err := m.MigrationsWithStatus(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading migration status: %w", err)
	}
	unknown, err := m.MissingMigrations(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading migration status: %w", err)
	}

	states := make([]MigrationState, 0, len(status)+len(unknown))
	for _, mig := range status {
		state := MigrationState{Name: mig.String(), Applied: mig.IsApplied()}
		if state.Applied {
			state.AppliedAt = mig.MigratedAt.UTC()
		}
		states = append(states, state)
	}
	slices.SortFunc(unknown, func(a, b migrate.Migration) int { return cmp.Compare(a.Name, b.Name) })
	for _, mig := range unknown {
		// The description is not stored in the database, only the version.
		states = append(states, MigrationState{Name: mig.Name, Applied: true, AppliedAt: mig.MigratedAt.UTC(), Unknown: true})
	}
	return states, nil
}

// PendingMigrations counts the migrations of this binary not applied to
// db yet.
func PendingMigrations(ctx context.Context, db *bun.DB) (int, error) {
	states, err := MigrationStatus(ctx, db)
	if err != nil {
		return 0, err
	}
	pending := 0
	for _, s := range states {
		if !s.Applied {
			pending++
		}
	}
	return pending, nil
}

// loadMigrations discovers the embedded migrations for db's dialect.
func loadMigrations(db *bun.DB) (*migrate.Migrations, error) {
	name := Dialect(db)
	if name != DriverMySQL && name != DriverSQLite {
		return nil, fmt.Errorf("no migrations for database dialect %q", name)
	}
	dir, err := fs.Sub(migrationFiles, "migrations/"+name)
	if err != nil {
		return nil, fmt.Errorf("loading %s migrations: %w", name, err)
	}
	ms := migrate.NewMigrations()
	if err := ms.Discover(dir); err != nil {
		return nil, fmt.Errorf("loading %s migrations: %w", name, err)
	}
	return ms, nil
}

// newMigrator returns a migrator that records a migration only once it has
// succeeded, so a failed migration shows as pending rather than applied.
func newMigrator(db *bun.DB, ms *migrate.Migrations) *migrate.Migrator {
	return migrate.NewMigrator(db, ms, migrate.WithMarkAppliedOnSuccess(true))
}

// single wraps one migration in its own collection. A migrator over it
// applies exactly that migration as a new group, or rolls back exactly that
// migration, whatever else the database holds.
func single(mig migrate.Migration) *migrate.Migrations {
	ms := migrate.NewMigrations()
	ms.Add(mig)
	return ms
}

// lastApplied returns the most recently applied migration: the highest
// group, and within a group (as bun's own Migrate would create) the highest
// name, matching bun's rollback order.
func lastApplied(ms migrate.MigrationSlice) (migrate.Migration, bool) {
	var last migrate.Migration
	for _, mig := range ms {
		if !mig.IsApplied() {
			continue
		}
		if mig.GroupID > last.GroupID || (mig.GroupID == last.GroupID && mig.Name > last.Name) {
			last = mig
		}
	}
	return last, last.IsApplied()
}

// refuseUnknown fails when the database has applied migrations that this
// binary does not embed.
func refuseUnknown(ctx context.Context, m *migrate.Migrator) error {
	unknown, err := m.MissingMigrations(ctx)
	if err != nil {
		return fmt.Errorf("reading migration status: %w", err)
	}
	if len(unknown) > 0 {
		return fmt.Errorf("database has migrations unknown to this binary (%s); roll back with the version that applied them", unknown)
	}
	return nil
}

// withMigrationLock runs fn while holding bun's migration lock.
func withMigrationLock(ctx context.Context, m *migrate.Migrator, fn func() error) (err error) {
	if err := m.Init(ctx); err != nil {
		return fmt.Errorf("creating migration tables: %w", err)
	}
	if err := acquireMigrationLock(ctx, m); err != nil {
		return err
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), migrationUnlockTimeout)
		defer cancel()
		if uerr := m.Unlock(uctx); uerr != nil {
			err = errors.Join(err, fmt.Errorf("releasing migration lock: %w", uerr))
		}
	}()
	return fn()
}

// acquireMigrationLock takes bun's lock, a unique row in the locks table.
// While another process holds it the insert fails, and we poll until it is released, the context ends or migrationLockWait
// passes.
func acquireMigrationLock(ctx context.Context, m *migrate.Migrator) error {
	ctx, cancel := context.WithTimeout(ctx, migrationLockWait)
	defer cancel()
	for waited := false; ; waited = true {
		err := m.Lock(ctx)
		switch {
		case err == nil:
			return nil
		case waited && ctx.Err() != nil:
			// The context ended during a retry rather than in the wait below.
			return lockedError(ctx)
		case !isUniqueViolation(err) && !isDeadlock(err):
			// Concurrent inserts of the same unique row can also deadlock
			// in InnoDB; both mean someone else is taking the lock.
			return fmt.Errorf("taking migration lock: %w", err)
		}
		select {
		case <-ctx.Done():
			return lockedError(ctx)
		case <-time.After(migrationLockPoll):
		}
	}
}

// lockedError reports giving up on a held migration lock.
func lockedError(ctx context.Context) error {
	return fmt.Errorf("%w (if no migration is running, delete the row in bun_migration_locks): %w",
		ErrMigrationLocked, ctx.Err())
}
