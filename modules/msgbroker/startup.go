package msgbroker

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/msgbroker/caddy-msgbroker/storage"
)

// startup builds a config's services once and remembers what it acquired
// for Cleanup. Callers wait on done with their own context, so a TLS
// handshake or a request never waits longer than it is willing to while
// the database opens.
type startup struct {
	once     sync.Once
	done     chan struct{}
	services *Services
	err      error

	// acquired resources, released by Cleanup even when startup failed
	db      *dbLease
	redis   *redisLease
	batcher *storage.MessageBatcher
}

func newStartup() *startup { return &startup{done: make(chan struct{})} }

// wait starts build on the first call and returns its result, or ctx's
// error when ctx ends first. build runs on its own context, bounded by
// acquireTimeout, never the first caller's.
func (st *startup) wait(ctx context.Context, build func(context.Context, *startup) (*Services, error)) (*Services, error) {
	st.once.Do(func() {
		go func() {
			defer close(st.done)
			buildCtx, cancel := context.WithTimeout(context.Background(), acquireTimeout)
			defer cancel()
			st.services, st.err = build(buildCtx, st)
		}()
	})
	select {
	case <-st.done:
		return st.services, st.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// ready returns the services when they are built, without waiting.
func (st *startup) ready() *Services {
	select {
	case <-st.done:
		return st.services
	default:
		return nil
	}
}

// release lets go of what startup acquired. It waits for a build still in
// progress (bounded by acquireTimeout), so nothing it acquires later leaks.
func (st *startup) release() error {
	st.once.Do(func() { // never started: nothing to wait for, and nothing may start now
		st.err = errors.New("msgbroker: the config was unloaded")
		close(st.done)
	})
	select {
	case <-st.done:
	case <-time.After(acquireTimeout + time.Second):
		return errors.New("msgbroker: startup did not finish; its resources may leak")
	}
	if st.batcher != nil {
		// Requests still on this config's handlers insert directly from
		// here on; nothing queued is dropped.
		st.batcher.Stop()
	}
	var errs []error
	if st.db != nil {
		errs = append(errs, st.db.release())
	}
	if st.redis != nil {
		errs = append(errs, st.redis.release())
	}
	return errors.Join(errs...)
}
