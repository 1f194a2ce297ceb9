package integration

import (
	"context"
	"crypto/rand"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/redis/go-redis/v9"

	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

// TestDeviceBrowserPageCompletesASession opens the browser example client
// (examples/clients/device/browser/index.html, served beside POST /api as
// the README shows) in Debian's headless Chromium, runs a session from its
// form — auth, three messages sealed with WebCrypto, a duplicate, logout —
// and checks both the page's log and the gateway's side: its message
// counters, and with Redis the three records stored.
func TestDeviceBrowserPageCompletesASession(t *testing.T) {
	for _, store := range []string{"memory", "redis"} {
		t.Run(store, func(t *testing.T) {
			device := "browser-" + strings.ToLower(rand.Text()[:8])
			appOptions, deviceOptions := "", "key_pool 2"
			var messages *redis.Client
			prefix := "msgbroker_it_" + rand.Text() + ":"
			if store == "redis" {
				addr := storagetest.Redis(t)
				messages = redis.NewClient(&redis.Options{Addr: addr, DB: 15})
				t.Cleanup(func() {
					defer messages.Close()
					keys, _ := messages.Keys(context.Background(), prefix+"*").Result()
					if len(keys) > 0 {
						messages.Del(context.Background(), keys...)
					}
				})
				appOptions = "redis " + addr
				deviceOptions += "\nstore redis\nsessions_db 14\nmessages_db 15\nmessage_prefix " + prefix
			}
			srv, api := deviceGatewayServer(t, appOptions, deviceOptions, device)
			// A result not seen yet has no series: 0.
			counted := func(result string) float64 {
				series := fmt.Sprintf(`msgbroker_device_messages_total{result=%q} `, result)
				_, body, err := srv.AdminGet("/metrics")
				if err != nil {
					t.Fatal(err)
				}
				for line := range strings.Lines(string(body)) {
					if v, ok := strings.CutPrefix(strings.TrimSpace(line), series); ok {
						f, err := strconv.ParseFloat(v, 64)
						if err != nil {
							t.Fatal(err)
						}
						return f
					}
				}
				return 0
			}
			delivered, duplicates := counted("delivered"), counted("duplicate")

			got := runBrowserSession(t, strings.TrimSuffix(api, "/api")+"/device-client/index.html", deviceUser+device, 3)
			want := fmt.Sprintf("session opened for \"device %s\" (rsa)\nmessage 0: delivered\nmessage 1: delivered\nmessage 2: delivered\nmessage 3: duplicate\nsession closed\n", device)
			if got != want {
				t.Fatalf("the page logged\n%s\nwant\n%s", got, want)
			}
			if d, dup := counted("delivered")-delivered, counted("duplicate")-duplicates; d != 3 || dup != 1 {
				t.Errorf("the gateway counted %v delivered and %v duplicates, want 3 and 1", d, dup)
			}
			if messages != nil {
				keys, err := messages.Keys(context.Background(), prefix+"*").Result()
				if err != nil || len(keys) != 3 {
					t.Errorf("Redis holds %d message records (%v), want 3", len(keys), err)
				}
			}
		})
	}
}

// runBrowserSession loads page in headless Chromium, fills in the form
// (key and message count), submits it and returns the page's log once it
// says the session closed or failed.
func runBrowserSession(t *testing.T, page, key string, n int) string {
	t.Helper()
	ctx := chromiumContext(t, 60*time.Second)

	const logText = `document.getElementById("log").textContent`
	err := chromedp.Do(ctx,
		chromedp.Navigate(page),
		chromedp.WaitVisible(chromedp.CSS("button")),
		chromedp.SetValue(chromedp.CSS("input[name=key]"), key),
		chromedp.SetValue(chromedp.CSS("input[name=n]"), fmt.Sprint(n)),
		chromedp.Click(chromedp.CSS("button")),
		chromedp.Poll[chromedp.Void](logText+`.includes("session closed") || `+logText+`.includes("error:")`,
			chromedp.WithPollingTimeout(30*time.Second)),
	)
	log, logErr := chromedp.Run(ctx, chromedp.Evaluate[string](logText))
	if err != nil || logErr != nil {
		t.Fatalf("Chromium on %s: %v, %v (log so far: %q)", page, err, logErr, log)
	}
	return log
}
