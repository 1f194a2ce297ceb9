package broker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

// statsMessage stores message i of client, created at, and moves it
// through path (each step at the time given).
func statsMessage(t *testing.T, store *storage.Store, i int, client string, created time.Time, path ...struct {
	to string
	at time.Time
}) {
	t.Helper()
	ctx := context.Background()
	m := &storage.Message{
		MessageID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), ClientID: client,
		SenderNumberHash: fmt.Sprintf("%064d", i), SenderNumberMasked: "+49****00", BodyEncrypted: []byte{1},
		EncryptionKeyID: "k", PayloadHash: fmt.Sprintf("%064d", i), QueuedAt: created, CreatedAt: created, UpdatedAt: created,
	}
	if err := store.Messages.Insert(ctx, m); err != nil {
		t.Fatal(err)
	}
	from := storage.MessageQueued
	for _, step := range path {
		ok, err := store.Messages.UpdateStatus(ctx, storage.StatusUpdate{MessageID: m.MessageID, From: from, To: step.to, At: step.at})
		if err != nil || !ok {
			t.Fatalf("%s → %s: %v, %v", from, step.to, ok, err)
		}
		from = step.to
	}
}

type step = struct {
	to string
	at time.Time
}

func TestAdminStatsSeriesPerClientAndLatency(t *testing.T) {
	storagetest.EachDialect(t, func(t *testing.T, db *bun.DB) {
		store := storage.New(db)
		// 10:30 UTC: the current hour is 10:00, the hourly series starts
		// at 11:00 yesterday, the daily one 29 days before today.
		now := time.Date(2026, 3, 15, 10, 30, 0, 0, time.UTC)
		i := 0
		next := func() int { i++; return i }
		// Ten deliveries of 100 ms, nine of 1 s and one of 30 s, in the
		// current hour, for proxy-a.
		for n, d := range map[time.Duration]int{100 * time.Millisecond: 10, time.Second: 9, 30 * time.Second: 1} {
			for range d {
				at := now.Add(-10 * time.Minute)
				statsMessage(t, store, next(), "proxy-a", at, step{storage.MessageDelivered, at.Add(n)})
			}
		}
		// proxy-b: one failed 3 hours ago, one queued exactly 24 h ago
		// (in the last 24 h, since the window includes its start), one
		// created a microsecond earlier (not), one 10 days ago, one 29
		// days ago at midnight (first daily point), one 30 days ago (none).
		statsMessage(t, store, next(), "proxy-b", now.Add(-3*time.Hour),
			step{storage.MessageProcessing, now.Add(-3 * time.Hour)}, step{storage.MessageFailed, now.Add(-3 * time.Hour)})
		statsMessage(t, store, next(), "proxy-b", now.Add(-24*time.Hour))
		statsMessage(t, store, next(), "proxy-b", now.Add(-24*time.Hour-time.Microsecond))
		statsMessage(t, store, next(), "proxy-b", now.Add(-10*24*time.Hour))
		statsMessage(t, store, next(), "proxy-b", time.Date(2026, 2, 14, 0, 0, 0, 0, time.UTC))
		statsMessage(t, store, next(), "proxy-b", time.Date(2026, 2, 13, 23, 59, 59, 0, time.UTC))
		// A delivery 25 hours ago is outside the latency window.
		statsMessage(t, store, next(), "proxy-c", now.Add(-26*time.Hour), step{storage.MessageDelivered, now.Add(-25 * time.Hour)})

		s, err := broker.CollectAdminStats(context.Background(), store, now)
		if err != nil {
			t.Fatal(err)
		}
		wantMsgs := broker.MessageStats{Total: 27, Queued: 5, Delivered: 21, Failed: 1, Last24h: 22, Last7d: 24}
		if s.Messages != wantMsgs {
			t.Errorf("messages = %+v\nwant       %+v", s.Messages, wantMsgs)
		}
		wantClients := []broker.ClientMessageStats{
			{ClientID: "proxy-a", Total: 20, Delivered: 20},
			{ClientID: "proxy-b", Total: 6, Queued: 5, Failed: 1},
			{ClientID: "proxy-c", Total: 1, Delivered: 1},
		}
		if fmt.Sprint(s.ByClient) != fmt.Sprint(wantClients) {
			t.Errorf("by client = %+v\nwant        %+v", s.ByClient, wantClients)
		}

		if len(s.Hourly) != broker.StatsHours || !s.Hourly[0].Start.Equal(time.Date(2026, 3, 14, 11, 0, 0, 0, time.UTC)) ||
			!s.Hourly[23].Start.Equal(time.Date(2026, 3, 15, 10, 0, 0, 0, time.UTC)) {
			t.Fatalf("hourly series %d points from %v to %v", len(s.Hourly), s.Hourly[0].Start, s.Hourly[len(s.Hourly)-1].Start)
		}
		for h, p := range s.Hourly {
			want := broker.StatsPoint{Start: p.Start}
			switch h {
			case 23:
				want.Registered, want.Delivered = 20, 20
			case 20:
				want.Registered, want.Failed = 1, 1
			}
			if p != want {
				t.Errorf("hourly[%d] = %+v, want %+v", h, p, want)
			}
		}
		if len(s.Daily) != broker.StatsDays || !s.Daily[0].Start.Equal(time.Date(2026, 2, 14, 0, 0, 0, 0, time.UTC)) {
			t.Fatalf("daily series %d points from %v", len(s.Daily), s.Daily[0].Start)
		}
		wantDaily := map[int]broker.StatsPoint{
			0:  {Registered: 1},
			19: {Registered: 1},
			28: {Registered: 3, Delivered: 1}, // 14 March: the two 24 h edge messages and proxy-c's, delivered at 09:30
			29: {Registered: 21, Delivered: 20, Failed: 1},
		}
		for d, p := range s.Daily {
			want := wantDaily[d]
			want.Start = p.Start
			if p != want {
				t.Errorf("daily[%d] = %+v, want %+v", d, p, want)
			}
		}

		l := s.Latency
		if l.Deliveries != 20 || !l.Since.Equal(s.Hourly[0].Start) || l.P50Ms == nil || l.P95Ms == nil {
			t.Fatalf("latency = %+v", l)
		}
		inBucket := func(name string, got float64, d time.Duration) {
			low, high := storage.LatencyBucketBounds(storage.LatencyBucket(d))
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
			if got < ms(low)-0.001 || got > ms(high)+0.001 {
				t.Errorf("%s = %v ms, want within the bucket of %v: [%v, %v] ms", name, got, d, ms(low), ms(high))
			}
		}
		inBucket("p50", *l.P50Ms, 100*time.Millisecond)
		inBucket("p95", *l.P95Ms, time.Second)

		empty, err := broker.CollectAdminStats(context.Background(), store, now.Add(48*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if empty.Latency.Deliveries != 0 || empty.Latency.P50Ms != nil || empty.Latency.P95Ms != nil || empty.Messages.Last24h != 0 {
			t.Errorf("two days later: latency %+v, last 24 h %d; want no deliveries and null percentiles", empty.Latency, empty.Messages.Last24h)
		}
	})
}
