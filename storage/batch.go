package storage

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// Batcher tunables.
const (
	// DefaultBatchSize caps how many registrations share one INSERT.
	DefaultBatchSize = 64
	// DefaultBatchWriters is how many batches may be in flight at once.
	// One is best measured (integration/loadtest on MariaDB: 5,200-5,500
	// registrations/s against 4,000-4,400 with two or four): while it
	// commits, the next batch gathers everything that arrives, so the
	// commit rate follows the disk and the batches grow with the load.
	DefaultBatchWriters = 1
	// batchTimeout bounds one batch INSERT, which serves many requests and
	// so cannot use any single request's context.
	batchTimeout = 30 * time.Second
)

// MessageBatcher inserts messages with group commit: concurrent Insert
// calls are gathered into one multi-row INSERT, one transaction and one
// log flush, and each caller returns only after that commit. There is no
// waiting for a batch to fill: a writer takes whatever is queued when it
// becomes free, so a lone request is inserted at once and batches grow only
// under load, when per-commit cost dominates.
type MessageBatcher struct {
	repo     *MessageRepo
	size     int
	requests chan *insertRequest
	done     chan struct{}
	wg       sync.WaitGroup
	stopOnce sync.Once
}

type insertRequest struct {
	msg    *Message
	result chan error
}

// NewMessageBatcher starts writers goroutines inserting through repo; call
// Stop to drain and end them.
func NewMessageBatcher(repo *MessageRepo, size, writers int) *MessageBatcher {
	if size <= 0 {
		size = DefaultBatchSize
	}
	if writers <= 0 {
		writers = DefaultBatchWriters
	}
	b := &MessageBatcher{repo: repo, size: size, requests: make(chan *insertRequest), done: make(chan struct{})}
	// Each writer adds to its own shard of the statistics counters, so
	// that concurrent batches do not wait for each other's counter rows.
	// The first shard is random so that the writers of several nodes on
	// one database spread too.
	first := rand.IntN(StatsShards)
	for i := range writers {
		b.wg.Add(1)
		go b.write((first + i) % StatsShards)
	}
	return b
}

// Insert stores m like MessageRepo.Insert (ErrConflict on a duplicate
// message id), sharing the commit with concurrent callers. After Stop it
// inserts directly.
func (b *MessageBatcher) Insert(ctx context.Context, m *Message) error {
	req := &insertRequest{msg: m, result: make(chan error, 1)}
	select {
	case b.requests <- req:
	case <-b.done:
		return b.repo.Insert(ctx, m)
	case <-ctx.Done():
		return dbError(ctx.Err(), "queueing message %s", m.MessageID)
	}
	// Once queued the row will be written whatever happens to ctx; wait for
	// the outcome so the answer tells the truth.
	return <-req.result
}

// Stop lets queued inserts finish and ends the writers.
func (b *MessageBatcher) Stop() {
	b.stopOnce.Do(func() { close(b.done) })
	b.wg.Wait()
}

func (b *MessageBatcher) write(shard int) {
	defer b.wg.Done()
	for {
		var first *insertRequest
		select {
		case first = <-b.requests:
		case <-b.done:
			return
		}
		batch := []*insertRequest{first}
	gather:
		for len(batch) < b.size {
			select {
			case req := <-b.requests:
				batch = append(batch, req)
			default:
				break gather
			}
		}
		b.flush(batch, shard)
	}
}

// flush inserts a batch in one statement. If that fails (a repeated
// registration, a row the database refuses, a lost connection), nothing
// was written, and each row is inserted alone, so that one request's
// problem never becomes its neighbours'. The counters go to the writer's
// shard.
func (b *MessageBatcher) flush(batch []*insertRequest, shard int) {
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	if len(batch) > 1 {
		msgs := make([]*Message, len(batch))
		for i, req := range batch {
			msgs[i] = req.msg
		}
		if err := b.repo.insertMany(ctx, msgs, shard); err == nil {
			for _, req := range batch {
				req.result <- nil
			}
			return
		}
	}
	for _, req := range batch {
		req.result <- b.repo.insertOne(ctx, req.msg, shard)
	}
}
