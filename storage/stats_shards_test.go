package storage_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

// churn writes the way a busy gateway does, all at once: registrations
// through a batcher with several writers and directly, and status changes
// of the registered messages as they arrive (some delivered, some failed,
// some left queued), over four creation hours and three clients. round
// keeps the message ids of successive calls apart.
func churn(ctx context.Context, store *storage.Store, round, writers int) error {
	b := storage.NewMessageBatcher(store.Messages, 8, writers)
	defer b.Stop()
	const inserters, each, updaters = 8, 24, 3
	type registered struct {
		id string
		i  int
	}
	ids := make(chan registered, inserters*each)
	errs := make(chan error, inserters+updaters)
	var ins, upd sync.WaitGroup
	for w := range inserters {
		ins.Go(func() {
			for i := range each {
				m := newMessage(round*100_000+w*1000+i, fmt.Sprintf("proxy-%d", i%3), "")
				m.CreatedAt = time.Now().Add(-time.Duration(i%4) * time.Hour)
				m.QueuedAt = m.CreatedAt
				insert := b.Insert
				if i%5 == 0 {
					insert = store.Messages.Insert
				}
				if err := insert(ctx, m); err != nil {
					errs <- fmt.Errorf("inserting %s: %w", m.MessageID, err)
					return
				}
				ids <- registered{m.MessageID, i}
			}
		})
	}
	for range updaters {
		upd.Go(func() {
			for r := range ids {
				var steps [][2]string
				switch r.i % 4 {
				case 0, 1:
					steps = [][2]string{{storage.MessageQueued, storage.MessageProcessing}, {storage.MessageProcessing, storage.MessageDelivered}}
				case 2:
					steps = [][2]string{{storage.MessageQueued, storage.MessageProcessing}, {storage.MessageProcessing, storage.MessageFailed}}
				}
				for _, step := range steps {
					ok, err := store.Messages.UpdateStatus(ctx, storage.StatusUpdate{MessageID: r.id, From: step[0], To: step[1]})
					if err != nil || !ok {
						errs <- fmt.Errorf("%s %s → %s: %v, applied %v", r.id, step[0], step[1], err, ok)
						return
					}
				}
			}
		})
	}
	ins.Wait()
	close(ids)
	upd.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// shardsUsed returns how many distinct shards the rows of table use, and
// whether all of them are within [0, StatsShards).
func shardsUsed(t *testing.T, db *bun.DB, table string) (n int, inRange bool) {
	t.Helper()
	var lo, hi int
	err := db.QueryRowContext(testContext(t), "SELECT COUNT(DISTINCT shard), COALESCE(MIN(shard), 0), COALESCE(MAX(shard), 0) FROM "+table).Scan(&n, &lo, &hi)
	mustNoErr(t, err, "reading the shards of "+table)
	return n, lo >= 0 && hi < storage.StatsShards
}

// TestStatsExactUnderConcurrentBatchWritersAndStatusUpdates: with four
// batch writers, direct inserts and three status updaters at once, the
// counters summed over their shards equal a recount of the messages, and
// the writes did spread over several shards.
func TestStatsExactUnderConcurrentBatchWritersAndStatusUpdates(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		store := storage.New(db)
		mustNoErr(t, churn(ctx, store, 1, 4), "churn")
		want := recount(t, store)
		if len(want.Counts) < 9 || len(want.Hours) < 4 || len(want.Latency) == 0 {
			t.Fatalf("the workload did not reach every client, status and hour: %+v", want)
		}
		assertCounters(t, store, want)
		for _, table := range []string{"message_counts", "message_hours", "message_latency"} {
			if n, ok := shardsUsed(t, db, table); n < 2 || !ok {
				t.Errorf("%s uses %d shards (all within [0, %d): %v), want several", table, n, storage.StatsShards, ok)
			}
		}
		// A second round on top of the first stays exact.
		mustNoErr(t, churn(ctx, store, 2, 2), "second churn")
		assertCounters(t, store, recount(t, store))
	})
}

// readFolded reads 0005's unsharded counter tables with plain SQL, failing
// if a key has more than one row.
func readFolded(t *testing.T, db *bun.DB) counters {
	t.Helper()
	ctx := testContext(t)
	c := counters{Counts: map[[2]string]int64{}, Hours: map[int64][3]int64{}, Latency: map[[2]int64]int64{}}
	scan := func(query string, row func(scan func(dest ...any) error) error) {
		rows, err := db.QueryContext(ctx, query)
		mustNoErr(t, err, query)
		defer rows.Close()
		for rows.Next() {
			mustNoErr(t, row(rows.Scan), query)
		}
		mustNoErr(t, rows.Err(), query)
	}
	scan("SELECT client_id, status, n FROM message_counts", func(s func(...any) error) error {
		var k [2]string
		var n int64
		if err := s(&k[0], &k[1], &n); err != nil {
			return err
		}
		if _, dup := c.Counts[k]; dup {
			return fmt.Errorf("two rows for %v", k)
		}
		if n != 0 {
			c.Counts[k] = n
		}
		return nil
	})
	scan("SELECT hour, registered, delivered, failed FROM message_hours", func(s func(...any) error) error {
		var h int64
		var v [3]int64
		if err := s(&h, &v[0], &v[1], &v[2]); err != nil {
			return err
		}
		if _, dup := c.Hours[h]; dup {
			return fmt.Errorf("two rows for hour %d", h)
		}
		c.Hours[h] = v
		return nil
	})
	scan("SELECT hour, bucket, n FROM message_latency", func(s func(...any) error) error {
		var k [2]int64
		var n int64
		if err := s(&k[0], &k[1], &n); err != nil {
			return err
		}
		if _, dup := c.Latency[k]; dup {
			return fmt.Errorf("two rows for %v", k)
		}
		c.Latency[k] = n
		return nil
	})
	return c
}

// TestMigration0006ShardsAndFoldsTheCounters: rolling 0006 back over
// counters spread across shards folds them into one row per key with the
// same totals; applying it again on that 0005 database keeps the totals
// (as shard 0), and the repository goes on counting exactly.
func TestMigration0006ShardsAndFoldsTheCounters(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		store := storage.New(db)
		mustNoErr(t, churn(ctx, store, 1, 4), "churn")
		want := recount(t, store)
		assertCounters(t, store, want)
		var keys, rows int
		mustNoErr(t, db.QueryRowContext(ctx, "SELECT COUNT(*) FROM (SELECT DISTINCT client_id, status FROM message_counts) AS k").Scan(&keys), "counting message_counts keys")
		mustNoErr(t, db.QueryRowContext(ctx, "SELECT COUNT(*) FROM message_counts").Scan(&rows), "counting message_counts rows")
		if rows <= keys {
			t.Fatalf("message_counts has %d rows for %d keys: nothing to fold", rows, keys)
		}

		// Down to before 0006 (0007, which only widens a column, first).
		rolled, err := storage.MigrateDown(ctx, db, 2)
		mustNoErr(t, err, "MigrateDown")
		if len(rolled) != 2 || rolled[1] != "0006_stats_shards" {
			t.Fatalf("rolled back %v", rolled)
		}
		if got := readFolded(t, db); !reflect.DeepEqual(got, want) {
			t.Fatalf("folded counters\n got %+v\nwant %+v", got, want)
		}

		applied, err := storage.Migrate(ctx, db)
		mustNoErr(t, err, "Migrate")
		if len(applied) != 2 || applied[0] != "0006_stats_shards" {
			t.Fatalf("applied %v", applied)
		}
		assertCounters(t, store, want)
		for _, table := range []string{"message_counts", "message_hours", "message_latency"} {
			if n, _ := shardsUsed(t, db, table); n != 1 {
				t.Errorf("%s uses %d shards after 0006 on folded counters, want only shard 0", table, n)
			}
		}

		mustNoErr(t, churn(ctx, store, 2, 4), "churn after 0006")
		assertCounters(t, store, recount(t, store))
	})
}
