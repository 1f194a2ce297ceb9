package storagetest_test

import (
	"context"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"

	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

func TestMySQLDatabaseIsFreshAndDroppedAfterTheTest(t *testing.T) {
	var name string
	t.Run("inner", func(t *testing.T) {
		cfg, err := mysql.ParseDSN(storagetest.MySQL(t))
		if err != nil {
			t.Fatal(err)
		}
		name = cfg.DBName
		if !strings.HasPrefix(name, "msgbroker_test_") {
			t.Errorf("database name %q lacks the msgbroker_test_ prefix", name)
		}
	})
	if name == "" { // the inner test was skipped
		return
	}
	db := storagetest.OpenMySQL(t)
	var n int
	err := db.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?", name).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("database %s still exists after its test ended", name)
	}
}

func TestRedisAnswers(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: storagetest.Redis(t)})
	defer client.Close()
	if err := client.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("PING: %v", err)
	}
}

func TestEachDialectGivesMigratedDatabases(t *testing.T) {
	var seen []string
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		seen = append(seen, storage.Dialect(db))
		states, err := storage.MigrationStatus(t.Context(), db)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range states {
			if !st.Applied {
				t.Errorf("migration %s not applied", st.Name)
			}
		}
	})
	if len(seen) == 0 || seen[0] != storage.DriverSQLite {
		t.Errorf("dialects run: %v", seen)
	}
}
