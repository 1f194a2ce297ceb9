package storage_test

import (
	"context"
	"fmt"
	"maps"
	"math"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

// counters is everything the statistics tables hold, comparable as a
// whole.
type counters struct {
	Counts  map[[2]string]int64
	Hours   map[int64][3]int64
	Latency map[[2]int64]int64
}

// readCounters reads the statistics tables.
func readCounters(t *testing.T, store *storage.Store) counters {
	t.Helper()
	ctx := testContext(t)
	c := counters{Counts: map[[2]string]int64{}, Hours: map[int64][3]int64{}, Latency: map[[2]int64]int64{}}
	counts, err := store.Messages.StatusCounts(ctx)
	mustNoErr(t, err, "StatusCounts")
	for _, r := range counts {
		c.Counts[[2]string{r.ClientID, r.Status}] = r.N
	}
	hours, err := store.Messages.Hours(ctx, math.MinInt64, math.MaxInt64)
	mustNoErr(t, err, "Hours")
	for _, h := range hours {
		c.Hours[h.Hour] = [3]int64{h.Registered, h.Delivered, h.Failed}
	}
	// Latency sums over hours, so the per-hour histogram is read here,
	// summing the shards.
	var lat []storage.LatencyCount
	mustNoErr(t, store.DB.NewSelect().Model(&lat).Scan(ctx), "reading message_latency")
	for _, l := range lat {
		c.Latency[[2]int64{l.Hour, int64(l.Bucket)}] += l.N
	}
	maps.DeleteFunc(c.Latency, func(_ [2]int64, n int64) bool { return n == 0 })
	return c
}

// recount computes what the statistics tables should hold from the
// messages themselves.
func recount(t *testing.T, store *storage.Store) counters {
	t.Helper()
	var msgs []storage.Message
	mustNoErr(t, store.DB.NewSelect().Model(&msgs).Scan(testContext(t)), "reading messages")
	c := counters{Counts: map[[2]string]int64{}, Hours: map[int64][3]int64{}, Latency: map[[2]int64]int64{}}
	for _, m := range msgs {
		c.Counts[[2]string{m.ClientID, m.Status}]++
		h := c.Hours[storage.HourOf(m.CreatedAt)]
		h[0]++
		c.Hours[storage.HourOf(m.CreatedAt)] = h
		switch {
		case m.Status == storage.MessageDelivered && m.DeliveredAt != nil:
			h := c.Hours[storage.HourOf(*m.DeliveredAt)]
			h[1]++
			c.Hours[storage.HourOf(*m.DeliveredAt)] = h
			c.Latency[[2]int64{storage.HourOf(*m.DeliveredAt), int64(storage.LatencyBucket(m.DeliveredAt.Sub(m.QueuedAt)))}]++
		case m.Status == storage.MessageFailed && m.FailedAt != nil:
			h := c.Hours[storage.HourOf(*m.FailedAt)]
			h[2]++
			c.Hours[storage.HourOf(*m.FailedAt)] = h
		}
	}
	return c
}

func assertCounters(t *testing.T, store *storage.Store, want counters) {
	t.Helper()
	if got := readCounters(t, store); !reflect.DeepEqual(got, want) {
		t.Fatalf("statistics tables\n got %+v\nwant %+v", got, want)
	}
}

func TestStatsCountersFollowInsertsAndStatusChanges(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		store := storage.New(db)
		hour := storage.HourOf(baseTime)

		a := newMessage(1, "proxy-a", "")
		a.QueuedAt = baseTime
		mustNoErr(t, store.Messages.Insert(ctx, a), "Insert")
		b, c := newMessage(2, "proxy-b", ""), newMessage(3, "proxy-a", "")
		c.CreatedAt = baseTime.Add(2 * time.Hour)
		mustNoErr(t, store.Messages.InsertMany(ctx, []*storage.Message{b, c}), "InsertMany")
		assertCounters(t, store, counters{
			Counts:  map[[2]string]int64{{"proxy-a", "queued"}: 2, {"proxy-b", "queued"}: 1},
			Hours:   map[int64][3]int64{hour: {2, 0, 0}, hour + 2: {1, 0, 0}},
			Latency: map[[2]int64]int64{},
		})

		// A refused insert changes nothing.
		if err := store.Messages.Insert(ctx, newMessage(1, "proxy-a", "")); err == nil {
			t.Fatal("a duplicate insert succeeded")
		}
		// A lost compare-and-set changes nothing either.
		lost, err := store.Messages.UpdateStatus(ctx, storage.StatusUpdate{MessageID: a.MessageID, From: storage.MessageProcessing, To: storage.MessageDelivered})
		mustNoErr(t, err, "UpdateStatus")
		if lost {
			t.Fatal("an update from the wrong status applied")
		}

		// a: queued → processing → delivered 1,500 ms after it was queued,
		// in the next hour.
		move(t, store, a.MessageID, storage.MessageQueued, storage.MessageProcessing, baseTime.Add(time.Second))
		deliveredAt := baseTime.Add(time.Hour + 1500*time.Millisecond)
		move(t, store, a.MessageID, storage.MessageProcessing, storage.MessageDelivered, deliveredAt)
		// b: queued → processing → retrying → retrying → failed.
		move(t, store, b.MessageID, storage.MessageQueued, storage.MessageProcessing, baseTime)
		move(t, store, b.MessageID, storage.MessageProcessing, storage.MessageRetrying, baseTime)
		move(t, store, b.MessageID, storage.MessageRetrying, storage.MessageRetrying, baseTime)
		move(t, store, b.MessageID, storage.MessageRetrying, storage.MessageFailed, baseTime.Add(3*time.Hour))

		bucket := storage.LatencyBucket(time.Hour + 1500*time.Millisecond)
		want := counters{
			Counts:  map[[2]string]int64{{"proxy-a", "queued"}: 1, {"proxy-a", "delivered"}: 1, {"proxy-b", "failed"}: 1},
			Hours:   map[int64][3]int64{hour: {2, 0, 0}, hour + 1: {0, 1, 0}, hour + 2: {1, 0, 0}, hour + 3: {0, 0, 1}},
			Latency: map[[2]int64]int64{{hour + 1, int64(bucket)}: 1},
		}
		assertCounters(t, store, want)
		if !reflect.DeepEqual(recount(t, store), want) {
			t.Fatalf("recount disagrees with the expected counters: %+v", recount(t, store))
		}
		lat, err := store.Messages.Latency(ctx, hour+1, hour+2)
		mustNoErr(t, err, "Latency")
		if len(lat) != 1 || lat[0].Bucket != bucket || lat[0].N != 1 {
			t.Fatalf("Latency of hour+1 = %+v, want one delivery in bucket %d", lat, bucket)
		}
		if lat, _ := store.Messages.Latency(ctx, hour+2, hour+24); len(lat) != 0 {
			t.Fatalf("Latency after the delivery hour = %+v, want none", lat)
		}
		hours, err := store.Messages.Hours(ctx, hour+1, hour+3)
		mustNoErr(t, err, "Hours")
		if len(hours) != 2 || hours[0].Hour != hour+1 || hours[1].Hour != hour+2 {
			t.Fatalf("Hours [hour+1, hour+3) = %+v", hours)
		}
		for _, tt := range []struct {
			from, to time.Time
			want     int64
		}{
			{b.CreatedAt, c.CreatedAt, 1},
			{a.CreatedAt.Add(time.Microsecond), c.CreatedAt.Add(time.Microsecond), 2},
			{a.CreatedAt, b.CreatedAt, 1},
		} {
			n, err := store.Messages.CountCreatedBetween(ctx, tt.from, tt.to)
			mustNoErr(t, err, "CountCreatedBetween")
			if n != tt.want {
				t.Errorf("CountCreatedBetween(%v, %v) = %d, want %d (from included, to excluded)", tt.from, tt.to, n, tt.want)
			}
		}
	})
}

func move(t *testing.T, store *storage.Store, id, from, to string, at time.Time) {
	t.Helper()
	ok, err := store.Messages.UpdateStatus(testContext(t), storage.StatusUpdate{MessageID: id, From: from, To: to, At: at})
	mustNoErr(t, err, "UpdateStatus")
	if !ok {
		t.Fatalf("%s: %s → %s did not apply", id, from, to)
	}
}

func TestLatencyBuckets(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want int
	}{
		{-time.Second, 0}, {0, 0}, {999 * time.Nanosecond, 0}, {time.Microsecond, 0},
		{2 * time.Microsecond, 4}, {3 * time.Microsecond, 6}, {time.Millisecond, 39},
		{1024 * time.Microsecond, 40}, {time.Second, 79}, {time.Hour, 126},
	}
	for _, tt := range tests {
		if got := storage.LatencyBucket(tt.d); got != tt.want {
			t.Errorf("LatencyBucket(%v) = %d, want %d", tt.d, got, tt.want)
		}
		low, high := storage.LatencyBucketBounds(tt.want)
		if tt.d >= 0 && (tt.d < low || tt.d >= high) {
			t.Errorf("LatencyBucketBounds(%d) = [%v, %v), which does not hold %v", tt.want, low, high, tt.d)
		}
	}
	if low, high := storage.LatencyBucketBounds(4); low != 2*time.Microsecond || high <= low || high >= 3*time.Microsecond {
		t.Errorf("LatencyBucketBounds(4) = [%v, %v), want [2µs, 2.38µs)", low, high)
	}
	if got := storage.HourOf(time.Date(1970, 1, 1, 1, 59, 59, 0, time.UTC)); got != 1 {
		t.Errorf("HourOf(01:59:59 on day 0) = %d, want 1", got)
	}
	if got := storage.HourStart(storage.HourOf(baseTime)); got != baseTime.Truncate(time.Hour) {
		t.Errorf("HourStart(HourOf(%v)) = %v", baseTime, got)
	}
}

// TestStatsCountersUnderConcurrentWriters runs inserts and status changes
// of the same clients from several goroutines at once: the counters end
// equal to a recount (no lost update, no deadlock surfacing as an error).
func TestStatsCountersUnderConcurrentWriters(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		store := storage.New(db)
		const workers, each = 6, 15
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			wg.Go(func() {
				errs <- walk(ctx, store, w, each)
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			mustNoErr(t, err, "concurrent writer")
		}
		want := recount(t, store)
		if want.Counts[[2]string{"proxy-0", storage.MessageDelivered}] == 0 || len(want.Latency) == 0 {
			t.Fatalf("the writers delivered nothing: %+v", want)
		}
		assertCounters(t, store, want)
	})
}

// walk inserts messages for two clients and moves each through to a final
// status, all by one writer.
func walk(ctx context.Context, store *storage.Store, w, n int) error {
	for i := range n {
		m := newMessage(w*1000+i, fmt.Sprintf("proxy-%d", i%2), "")
		m.CreatedAt = time.Now().Add(-time.Duration(i) * time.Hour)
		m.QueuedAt = m.CreatedAt
		if err := store.Messages.Insert(ctx, m); err != nil {
			return err
		}
		final := storage.MessageDelivered
		if i%3 == 0 {
			final = storage.MessageFailed
		}
		for _, step := range [][2]string{{storage.MessageQueued, storage.MessageProcessing}, {storage.MessageProcessing, final}} {
			ok, err := store.Messages.UpdateStatus(ctx, storage.StatusUpdate{MessageID: m.MessageID, From: step[0], To: step[1]})
			if err != nil || !ok {
				return fmt.Errorf("%s %s → %s: %v, applied %v", m.MessageID, step[0], step[1], err, ok)
			}
		}
	}
	return nil
}

// TestMigration0005BackfillsWhatTheRepositoryMaintains rolls 0006 and
// 0005 back over stored messages and applies them again: 0005's SQL must
// rebuild exactly the counters the repository kept.
func TestMigration0005BackfillsWhatTheRepositoryMaintains(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testContext(t)
		store := storage.New(db)
		latencies := []time.Duration{42 * time.Millisecond, 250 * time.Millisecond, 3 * time.Second, 90 * time.Minute}
		for i := range 12 {
			m := newMessage(i, fmt.Sprintf("proxy-%d", i%3), "")
			m.CreatedAt = baseTime.Add(time.Duration(i) * 37 * time.Minute)
			m.QueuedAt = m.CreatedAt
			mustNoErr(t, store.Messages.Insert(ctx, m), "Insert")
			switch i % 4 {
			case 0, 1:
				move(t, store, m.MessageID, storage.MessageQueued, storage.MessageDelivered, m.QueuedAt.Add(latencies[i%len(latencies)]))
			case 2:
				move(t, store, m.MessageID, storage.MessageQueued, storage.MessageProcessing, m.QueuedAt)
				move(t, store, m.MessageID, storage.MessageProcessing, storage.MessageFailed, m.QueuedAt.Add(time.Hour))
			}
		}
		want := recount(t, store)
		assertCounters(t, store, want)
		rolled, err := storage.MigrateDown(ctx, db, 3)
		mustNoErr(t, err, "MigrateDown")
		if len(rolled) != 3 || rolled[2] != "0005_stats_rollup_audit_indexes" {
			t.Fatalf("rolled back %v", rolled)
		}
		_, err = storage.Migrate(ctx, db)
		mustNoErr(t, err, "Migrate")
		assertCounters(t, store, want)
	})
}
