package storage_test

import (
	"strings"
	"testing"
	"time"

	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

// TestMigration0007DownKeepsLongKeysOrFails: on MySQL, rolling 0007 back
// while a certificate storage key is longer than 255 characters fails and
// leaves the schema and the key as they were (the migration file says to
// delete such keys first); without one it narrows the column.
func TestMigration0007DownKeepsLongKeysOrFails(t *testing.T) {
	db := storagetest.OpenMySQL(t)
	ctx := testContext(t)
	repo := storage.New(db).CertData
	long := "certificates/local/" + strings.Repeat("d", 300)
	mustNoErr(t, repo.Put(ctx, long, []byte("v")), "storing a long key")
	if rolled, err := storage.MigrateDown(ctx, db, 1); err == nil {
		t.Fatalf("0007 rolled back (%v) with a %d-character key stored", rolled, len(long))
	}
	if _, err := repo.Get(ctx, long); err != nil {
		t.Fatalf("the long key after the failed rollback: %v", err)
	}
	states, err := storage.MigrationStatus(ctx, db)
	mustNoErr(t, err, "MigrationStatus")
	if last := states[len(states)-1]; last.Name != "0007_certmagic_long_keys" || !last.Applied {
		t.Fatalf("after the failed rollback: %+v", last)
	}
	// Nothing was narrowed either: a long lock name still fits.
	if ok, err := repo.TryLock(ctx, strings.Repeat("l", 700), "owner", time.Minute); !ok || err != nil {
		t.Fatalf("a 700-character lock name after the failed rollback: %v, %v", ok, err)
	}
	if _, err := repo.Unlock(ctx, strings.Repeat("l", 700), "owner"); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.DeleteTree(ctx, long); err != nil {
		t.Fatal(err)
	}
	rolled, err := storage.MigrateDown(ctx, db, 1)
	mustNoErr(t, err, "MigrateDown without long keys")
	if len(rolled) != 1 || rolled[0] != "0007_certmagic_long_keys" {
		t.Fatalf("rolled back %v", rolled)
	}
	if err := repo.Put(ctx, "certificates/local/"+strings.Repeat("d", 250), []byte("v")); err == nil {
		t.Error("a 269-character key was stored after 0007 was rolled back")
	}
}
