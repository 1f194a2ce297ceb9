package integration

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/google/uuid"

	"github.com/msgbroker/caddy-msgbroker/modules/msgbroker"
)

// maxReloadTransportErrors bounds the requests a reload may drop without an
// answer. Caddy hands the listener to the new config and shuts the old
// server down gracefully: HTTP/2 clients get a GOAWAY and retry requests
// the old server did not take, so none should be lost on the way.
const maxReloadTransportErrors = 0

// TestReloadsUnderLoadLoseNothing registers messages from several clients
// while the config is reloaded through the admin API. Every request must
// get an answer, the answer must be 201 or, while a config is switched, 503
// (which a proxy retries); anything else fails the test, and every
// acknowledged message must be in the database.
func TestReloadsUnderLoadLoseNothing(t *testing.T) {
	g := startGateway(t, "mysql", "")
	cert, _ := g.issue("proxy-reload", "proxy")

	var mu sync.Mutex
	var acknowledged []string
	var unavailable, transportErrors atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := g.client(&cert)
			for {
				select {
				case <-stop:
					return
				default:
				}
				id := uuid.NewString()
				r, err := g.send(client, "POST", "/internal/messages/register", registerBody(id, "+4915200000013", "under reload"))
				switch {
				case err != nil:
					if transportErrors.Add(1) <= maxReloadTransportErrors+3 {
						t.Logf("request %s got no answer: %v", id, err)
					}
				case r.Status == http.StatusCreated:
					mu.Lock()
					acknowledged = append(acknowledged, id)
					mu.Unlock()
				case r.Status == http.StatusServiceUnavailable:
					unavailable.Add(1)
				default:
					t.Errorf("answer during reload: %d %s", r.Status, r.Raw)
				}
			}
		}()
	}
	for i := range 5 {
		time.Sleep(150 * time.Millisecond)
		if err := g.srv.Reload(g.caddyfile); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
	}
	time.Sleep(150 * time.Millisecond)
	close(stop)
	wg.Wait()

	// The app of the config running now: the first one was cleaned up.
	app, err := caddy.ActiveContext().App(msgbroker.AppName)
	if err != nil {
		t.Fatal(err)
	}
	svcs, err := app.(*msgbroker.App).Services(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range acknowledged {
		if _, err := svcs.Store.Messages.GetByMessageID(context.Background(), id); err != nil {
			t.Errorf("acknowledged message %s is missing: %v", id, err)
		}
	}
	t.Logf("over 5 reloads: %d acknowledged, %d answered 503, %d without an answer",
		len(acknowledged), unavailable.Load(), transportErrors.Load())
	if n := transportErrors.Load(); n > maxReloadTransportErrors {
		t.Errorf("%d requests got no answer during the reloads, want at most %d", n, maxReloadTransportErrors)
	}
	if len(acknowledged) < 20 {
		t.Fatalf("only %d registrations went through; the load did not run", len(acknowledged))
	}
}
