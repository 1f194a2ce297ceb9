package broker_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

// TestAdminStatsEdgesOfTheSeries: a message in the first hour of the
// hourly series is counted there; one stamped after today (a node whose
// clock runs ahead) is in neither series; a delivery alone in the lowest
// latency bucket, which starts at zero, is placed at that bucket's top.
func TestAdminStatsEdgesOfTheSeries(t *testing.T) {
	store := storage.New(storagetest.OpenSQLite(t))
	now := time.Date(2026, 3, 15, 10, 30, 0, 0, time.UTC)
	firstHour := time.Date(2026, 3, 14, 11, 0, 0, 0, time.UTC)
	statsMessage(t, store, 1, "proxy-a", firstHour)
	statsMessage(t, store, 2, "proxy-a", now.Add(-5*time.Minute), step{storage.MessageDelivered, now.Add(-5 * time.Minute)})
	statsMessage(t, store, 3, "proxy-a", now.Add(24*time.Hour))

	s, err := broker.CollectAdminStats(context.Background(), store, now)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Hourly[0].Start.Equal(firstHour) || s.Hourly[0].Registered != 1 {
		t.Errorf("hourly[0] = %+v, want the message of %s", s.Hourly[0], firstHour)
	}
	var hourly, daily int64
	for _, p := range s.Hourly {
		hourly += p.Registered
	}
	for _, p := range s.Daily {
		daily += p.Registered
	}
	if hourly != 2 || daily != 2 || s.Daily[29].Registered != 1 {
		t.Errorf("registered: %d in the hourly series, %d in the daily one (%d today); want 2, 2 (1): tomorrow's message in neither", hourly, daily, s.Daily[29].Registered)
	}
	_, high := storage.LatencyBucketBounds(0)
	highMs := float64(high) / float64(time.Millisecond)
	l := s.Latency
	// The one delivery is the whole bucket: its rank puts it at the bucket's top.
	if want := math.Round(highMs*1000) / 1000; l.Deliveries != 1 || l.P50Ms == nil || *l.P50Ms != want {
		t.Fatalf("latency of one instant delivery = %+v (p50 %v), want a p50 of %v ms, the top of the lowest bucket", l, l.P50Ms, want)
	}
}
