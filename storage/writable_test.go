package storage_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/uptrace/bun"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

// openSQLiteAt opens and migrates a SQLite database at path.
func openSQLiteAt(t *testing.T, dsn string) *storage.Store {
	t.Helper()
	db := openDB(t, storage.Config{Driver: storage.DriverSQLite, DSN: dsn})
	if _, err := storage.Migrate(testContext(t), db); err != nil {
		t.Fatal(err)
	}
	return storage.New(db)
}

func TestCheckWritableOnAHealthyDatabase(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		s := storage.New(db)
		for range 2 { // the first check inserts the probe row, the second updates it
			if err := s.CheckWritable(testContext(t)); err != nil {
				t.Fatalf("CheckWritable: %v", err)
			}
		}
	})
}

// SQLite keeps writing into a deleted file's inode; the store must refuse
// instead, so nothing is acknowledged into a file nobody can read again.
func TestDeletedSQLiteFileRefusesWritesAsUnavailable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broker.db")
	s := openSQLiteAt(t, path)
	ctx := testContext(t)
	if err := s.Messages.Insert(ctx, newMessage(1, "c1", "queued")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	err := s.Messages.Insert(ctx, newMessage(2, "c1", "queued"))
	if apperr.KindOf(err) != apperr.Unavailable {
		t.Fatalf("insert after the file was deleted = %v (kind %v), want Unavailable", err, apperr.KindOf(err))
	}
	if err := s.CheckWritable(ctx); !errors.Is(err, storage.ErrFileGone) {
		t.Fatalf("CheckWritable after deletion = %v, want ErrFileGone", err)
	}
	// A new file at the same path is not the database that was opened.
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckWritable(ctx); !errors.Is(err, storage.ErrFileGone) {
		t.Fatalf("CheckWritable after replacement = %v, want ErrFileGone", err)
	}
}

func TestReadOnlySQLiteIsUnavailableNotInternal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broker.db")
	openSQLiteAt(t, path) // create and migrate it
	s := storage.New(openDB(t, storage.Config{Driver: storage.DriverSQLite, DSN: "file:" + path + "?mode=ro"}))
	ctx := testContext(t)
	if err := s.CheckWritable(ctx); apperr.KindOf(err) != apperr.Unavailable {
		t.Fatalf("CheckWritable on a read-only database = %v, want Unavailable", err)
	}
	if err := s.Messages.Insert(ctx, newMessage(1, "c1", "queued")); apperr.KindOf(err) != apperr.Unavailable {
		t.Fatalf("insert into a read-only database = %v, want Unavailable", err)
	}
}

// A full disk makes writes Unavailable, and writes work again as soon as
// space returns, without reopening anything.
func TestFullDiskIsUnavailableAndRecovers(t *testing.T) {
	dir := storagetest.SmallFilesystem(t, "2m")
	s := openSQLiteAt(t, filepath.Join(dir, "broker.db"))
	ctx := testContext(t)
	filler := filepath.Join(dir, "filler")
	storagetest.FillDisk(t, filler)

	var err error
	for i := 0; i < 10000 && err == nil; i++ {
		m := newMessage(i, "c1", "queued")
		m.BodyEncrypted = make([]byte, 4096)
		err = s.Messages.Insert(ctx, m)
	}
	if apperr.KindOf(err) != apperr.Unavailable {
		t.Fatalf("insert on a full disk = %v, want Unavailable", err)
	}
	if err := s.CheckWritable(ctx); apperr.KindOf(err) != apperr.Unavailable {
		t.Fatalf("CheckWritable on a full disk = %v, want Unavailable", err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckWritable(ctx); err != nil {
		t.Fatalf("CheckWritable after space returned: %v", err)
	}
	if err := s.Messages.Insert(ctx, newMessage(20000, "c1", "queued")); err != nil {
		t.Fatalf("insert after space returned: %v", err)
	}
}

// MariaDB's full-disk and read-only errors cannot be provoked on the
// shared test server without disturbing other tests, so their
// classification is checked by error number: each is Unavailable (503),
// while a constraint failure stays what it is.
func TestMySQLFullAndReadOnlyErrorsAreUnavailable(t *testing.T) {
	for number, want := range map[uint16]bool{
		3:    true,  // error writing a file
		1021: true,  // disk full
		1114: true,  // table full
		1036: true,  // table is read only
		1290: true,  // --read-only server
		1792: true,  // read-only transaction
		1062: false, // duplicate entry: a conflict, not an outage
		4025: false, // CHECK constraint failed: a bug or bad input
	} {
		err := fmt.Errorf("writing: %w", &mysql.MySQLError{Number: number, Message: "x"})
		if got := storage.IsUnavailable(err); got != want {
			t.Errorf("IsUnavailable(MySQL error %d) = %v, want %v", number, got, want)
		}
	}
}
