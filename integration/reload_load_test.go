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

// TestReloadsUnderLoadLoseNothing registers messages from several clients
// while the config is reloaded through the admin API: no answer may be a
// 500, and every acknowledged message must be in the database.
func TestReloadsUnderLoadLoseNothing(t *testing.T) {
	g := startGateway(t, "mysql", "")
	cert, _ := g.issue("proxy-reload", "proxy")

	var mu sync.Mutex
	var acknowledged []string
	var serverErrors, transportErrors atomic.Int64
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
					transportErrors.Add(1) // retried by a real proxy; never acknowledged
				case r.Status >= 500 && r.Status != http.StatusServiceUnavailable:
					serverErrors.Add(1)
					t.Errorf("answer during reload: %d %s", r.Status, r.Raw)
				case r.Status == http.StatusCreated:
					mu.Lock()
					acknowledged = append(acknowledged, id)
					mu.Unlock()
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
	t.Logf("%d acknowledged, %d transport errors, %d server errors over 5 reloads", len(acknowledged), transportErrors.Load(), serverErrors.Load())
	if len(acknowledged) < 20 {
		t.Fatalf("only %d registrations went through; the load did not run", len(acknowledged))
	}
}
