package storage

import (
	"cmp"
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/uptrace/bun"
)

// The statistics are read from counters that the message repository keeps
// in the same transaction as every insert and status change, so reading
// them costs a few hundred small rows whatever the number of messages
// (counting a million messages by status takes MariaDB a quarter of a
// second). Migration 0005 fills them from the messages already stored.
//
// Each counter is split over StatsShards rows (migration 0006): a
// transaction adds to the rows of one shard only, and readers sum over the
// shards. Concurrent writers that use different shards never wait for each
// other's row locks, which InnoDB holds until commit; with a single row
// per counter every registration batch and status change of a client
// queued behind the one before.

// StatsShards is how many rows each counter is split over. Batch writers
// take one shard each (see MessageBatcher); any other write picks one at
// random.
const StatsShards = 8

// anyShard is the shard of a write that is not a batch writer's.
func anyShard() int {
	return rand.IntN(StatsShards)
}

// MessageCount is a row of message_counts: how many messages of a client
// have a status now (in one shard; StatusCounts sums the shards).
type MessageCount struct {
	bun.BaseModel `bun:"table:message_counts"`

	ClientID string `bun:"client_id,pk"`
	Status   string `bun:"status,pk"`
	// Shard is the counter's part, 0 ≤ Shard < StatsShards; it is 0 in
	// the summed rows the repository returns.
	Shard int   `bun:"shard,pk"`
	N     int64 `bun:"n,notnull"`
}

// MessageHour is a row of message_hours: what happened in one UTC hour.
// Registered counts messages by creation time, Delivered and Failed by the
// time they reached that status. Like MessageCount, a row is one shard's
// part and the repository returns the sums.
type MessageHour struct {
	bun.BaseModel `bun:"table:message_hours"`

	// Hour is whole hours since the Unix epoch; see HourOf.
	Hour       int64 `bun:"hour,pk"`
	Shard      int   `bun:"shard,pk"`
	Registered int64 `bun:"registered,notnull"`
	Delivered  int64 `bun:"delivered,notnull"`
	Failed     int64 `bun:"failed,notnull"`
}

// LatencyCount is a row of message_latency: how many deliveries in one UTC
// hour took a queued → delivered time within one bucket (one shard's part,
// like MessageCount).
type LatencyCount struct {
	bun.BaseModel `bun:"table:message_latency"`

	Hour   int64 `bun:"hour,pk"`
	Bucket int   `bun:"bucket,pk"`
	Shard  int   `bun:"shard,pk"`
	N      int64 `bun:"n,notnull"`
}

// LatencyBucketsPerOctave is the histogram resolution: bucket b holds
// latencies in [2^(b/4), 2^((b+1)/4)) microseconds, so a bucket is 19 %
// wide and a percentile read from it is within 19 % of the exact one.
const LatencyBucketsPerOctave = 4

// HourOf is the hour number of t: whole hours since the Unix epoch, UTC.
func HourOf(t time.Time) int64 {
	return int64(math.Floor(float64(t.Unix()) / 3600))
}

// HourStart is the time at which hour h begins.
func HourStart(h int64) time.Time {
	return time.Unix(h*3600, 0).UTC()
}

// LatencyBucket is the histogram bucket of a latency; anything under a
// microsecond (including a negative latency from clocks that disagree)
// lands in bucket 0.
func LatencyBucket(d time.Duration) int {
	us := d.Microseconds()
	if us < 1 {
		return 0
	}
	return int(math.Floor(LatencyBucketsPerOctave * math.Log2(float64(us))))
}

// LatencyBucketBounds is the range [low, high) of bucket b.
func LatencyBucketBounds(b int) (low, high time.Duration) {
	bound := func(b int) time.Duration {
		return time.Duration(math.Pow(2, float64(b)/LatencyBucketsPerOctave) * float64(time.Microsecond))
	}
	if b <= 0 {
		return 0, bound(1)
	}
	return bound(b), bound(b + 1)
}

// rollup gathers the counter changes of one transaction, all for one
// shard.
type rollup struct {
	shard   int
	counts  map[[2]string]int64
	hours   map[int64]*MessageHour
	latency map[[2]int64]int64
}

func newRollup(shard int) *rollup {
	return &rollup{shard: shard, counts: map[[2]string]int64{}, hours: map[int64]*MessageHour{}, latency: map[[2]int64]int64{}}
}

func (r *rollup) hour(h int64) *MessageHour {
	if r.hours[h] == nil {
		r.hours[h] = &MessageHour{Hour: h, Shard: r.shard}
	}
	return r.hours[h]
}

// inserted accounts a new row as it is stored: its status, its creation
// hour and, for a row stored already final, its delivery or failure.
func (r *rollup) inserted(m *Message) {
	r.counts[[2]string{m.ClientID, m.Status}]++
	r.hour(HourOf(m.CreatedAt)).Registered++
	r.reached(m.Status, m.QueuedAt, m.DeliveredAt, m.FailedAt)
}

// moved accounts a status change of a message of client from one status
// to another at time at.
func (r *rollup) moved(client, from, to string, queuedAt, at time.Time) {
	r.counts[[2]string{client, from}]--
	r.counts[[2]string{client, to}]++
	r.reached(to, queuedAt, &at, &at)
}

func (r *rollup) reached(status string, queuedAt time.Time, deliveredAt, failedAt *time.Time) {
	switch {
	case status == MessageDelivered && deliveredAt != nil:
		h := HourOf(*deliveredAt)
		r.hour(h).Delivered++
		r.latency[[2]int64{h, int64(LatencyBucket(deliveredAt.Sub(queuedAt)))}]++
	case status == MessageFailed && failedAt != nil:
		r.hour(HourOf(*failedAt)).Failed++
	}
}

// apply adds the changes to the counter tables. Rows are written in key
// order, the same in every transaction, so that two transactions touching
// the same counters (of the same shard) wait for each other instead of
// deadlocking; all rows of a transaction have one shard, so key order is
// also primary key order.
func (r *rollup) apply(ctx context.Context, db bun.IDB) error {
	counts := make([]MessageCount, 0, len(r.counts))
	for k, n := range r.counts {
		if n != 0 {
			counts = append(counts, MessageCount{ClientID: k[0], Status: k[1], Shard: r.shard, N: n})
		}
	}
	slices.SortFunc(counts, func(a, b MessageCount) int {
		return cmp.Or(cmp.Compare(a.ClientID, b.ClientID), cmp.Compare(a.Status, b.Status))
	})
	hours := make([]MessageHour, 0, len(r.hours))
	for _, h := range r.hours {
		hours = append(hours, *h)
	}
	slices.SortFunc(hours, func(a, b MessageHour) int { return cmp.Compare(a.Hour, b.Hour) })
	latency := make([]LatencyCount, 0, len(r.latency))
	for k, n := range r.latency {
		latency = append(latency, LatencyCount{Hour: k[0], Bucket: int(k[1]), Shard: r.shard, N: n})
	}
	slices.SortFunc(latency, func(a, b LatencyCount) int {
		return cmp.Or(cmp.Compare(a.Hour, b.Hour), cmp.Compare(a.Bucket, b.Bucket))
	})

	if err := upsert(ctx, db, &counts, len(counts), "client_id, status, shard", "n = ? + ?", "n"); err != nil {
		return dbError(err, "updating message counts")
	}
	if err := upsert(ctx, db, &hours, len(hours), "hour, shard", "registered = ? + ?, delivered = ? + ?, failed = ? + ?",
		"registered", "delivered", "failed"); err != nil {
		return dbError(err, "updating hourly message counts")
	}
	if err := upsert(ctx, db, &latency, len(latency), "hour, bucket, shard", "n = ? + ?", "n"); err != nil {
		return dbError(err, "updating delivery latency counts")
	}
	return nil
}

// upsert inserts rows, adding each counter column to an existing row's.
// set is the SET clause with two placeholders per column (the column and
// its new value), filled in per dialect.
func upsert(ctx context.Context, db bun.IDB, rows any, n int, key, set string, cols ...string) error {
	if n == 0 {
		return nil
	}
	q := db.NewInsert().Model(rows)
	args := make([]any, 0, 2*len(cols))
	if db.Dialect().Name().String() == DriverMySQL {
		for _, c := range cols {
			args = append(args, bun.Ident(c), bun.SafeQuery("VALUES(?)", bun.Ident(c)))
		}
		q = q.On("DUPLICATE KEY UPDATE")
	} else {
		for _, c := range cols {
			args = append(args, bun.Ident(c), bun.SafeQuery("excluded.?", bun.Ident(c)))
		}
		q = q.On("CONFLICT (" + key + ") DO UPDATE")
	}
	_, err := q.Set(set, args...).Exec(ctx)
	return err
}

// writeTx runs fn in a transaction and runs it again, from the start, when
// MySQL chose it as a deadlock victim: InnoDB can still pick one when
// concurrent inserts take gap locks on a counter table, and it rolls the
// whole transaction back, so a new attempt is safe.
func writeTx(ctx context.Context, db *bun.DB, fn func(ctx context.Context, tx bun.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := db.RunInTx(ctx, nil, fn)
		if err == nil || attempt == maxDeadlockAttempts || !isDeadlock(err) {
			return err
		}
		pause := time.Duration(attempt)*deadlockBackoff + rand.N(deadlockBackoff)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(pause):
		}
	}
}

// StatusCounts returns the message counts, summed over the shards, that
// are not zero, ordered by client and status.
func (r *MessageRepo) StatusCounts(ctx context.Context) ([]MessageCount, error) {
	var rows []MessageCount
	err := r.db.NewSelect().Model((*MessageCount)(nil)).
		Column("client_id", "status").ColumnExpr("SUM(n) AS n").
		Group("client_id", "status").Having("SUM(n) <> 0").
		Order("client_id", "status").Scan(ctx, &rows)
	if err != nil {
		return nil, dbError(err, "reading message counts")
	}
	return rows, nil
}

// Hours returns the hourly counts of hours from ≤ hour < to, summed over
// the shards, in order; hours without activity are absent.
func (r *MessageRepo) Hours(ctx context.Context, from, to int64) ([]MessageHour, error) {
	var rows []MessageHour
	err := r.db.NewSelect().Model((*MessageHour)(nil)).
		Column("hour").
		ColumnExpr("SUM(registered) AS registered").
		ColumnExpr("SUM(delivered) AS delivered").
		ColumnExpr("SUM(failed) AS failed").
		Where("hour >= ?", from).Where("hour < ?", to).
		Group("hour").Order("hour").Scan(ctx, &rows)
	if err != nil {
		return nil, dbError(err, "reading hourly message counts")
	}
	return rows, nil
}

// Latency returns the delivery latency histogram of hours from ≤ hour <
// to, summed per bucket (over hours and shards), in bucket order.
func (r *MessageRepo) Latency(ctx context.Context, from, to int64) ([]LatencyCount, error) {
	var rows []LatencyCount
	err := r.db.NewSelect().Model((*LatencyCount)(nil)).
		Column("bucket").ColumnExpr("SUM(n) AS n").
		Where("hour >= ?", from).Where("hour < ?", to).
		Group("bucket").Order("bucket").Scan(ctx, &rows)
	if err != nil {
		return nil, dbError(err, "reading delivery latency counts")
	}
	return rows, nil
}

// CountCreatedBetween returns the number of messages created at or after
// from and before to: the partial hours at the edges of a window, which
// the hourly counters cannot split. It is a range scan of
// idx_messages_created_at over at most an hour.
func (r *MessageRepo) CountCreatedBetween(ctx context.Context, from, to time.Time) (int64, error) {
	n, err := r.db.NewSelect().Model((*Message)(nil)).
		Where("created_at >= ?", utc(from)).Where("created_at < ?", utc(to)).Count(ctx)
	if err != nil {
		return 0, dbError(err, "counting messages created in [%s, %s)", from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339))
	}
	return n, nil
}
