package broker

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/msgbroker/caddy-msgbroker/storage"
)

// Chart lengths of AdminStats.
const (
	StatsHours = 24
	StatsDays  = 30
)

// AdminStats are the statistics of GET /admin/stats: the CLI's numbers plus
// counts per client, the portal's chart series and the delivery latency.
type AdminStats struct {
	Stats
	// ByClient counts each client's messages by status, ordered by client
	// id; clients without messages are absent.
	ByClient []ClientMessageStats `json:"by_client"`
	// Hourly has StatsHours points, one per UTC clock hour, oldest first;
	// the last is the current hour, so far.
	Hourly []StatsPoint `json:"hourly"`
	// Daily has StatsDays points, one per UTC day, oldest first; the last
	// is today, so far.
	Daily []StatsPoint `json:"daily"`
	// Latency is the queued → delivered time of the deliveries in the
	// hours of Hourly.
	Latency DeliveryLatency `json:"delivery_latency"`
}

// ClientMessageStats counts one client's messages by status.
type ClientMessageStats struct {
	ClientID   string `json:"client_id"`
	Total      int64  `json:"total"`
	Queued     int64  `json:"queued"`
	Processing int64  `json:"processing"`
	Retrying   int64  `json:"retrying"`
	Delivered  int64  `json:"delivered"`
	Failed     int64  `json:"failed"`
}

// StatsPoint is what happened in one hour or day: messages registered
// (created) in it, and messages that reached delivered or failed in it.
type StatsPoint struct {
	Start      time.Time `json:"start"`
	Registered int64     `json:"registered"`
	Delivered  int64     `json:"delivered"`
	Failed     int64     `json:"failed"`
}

// DeliveryLatency summarises delivery times. The percentiles are read from
// a histogram whose buckets are 19 % wide (storage.LatencyBucketsPerOctave)
// and so are within 19 % of the exact value; they are null without
// deliveries.
type DeliveryLatency struct {
	Since      time.Time `json:"since"`
	Deliveries int64     `json:"deliveries"`
	P50Ms      *float64  `json:"p50_ms"`
	P95Ms      *float64  `json:"p95_ms"`
}

// CollectAdminStats reads the admin statistics as of now: five small
// queries on the counter tables, one on the clients and users tables and
// two index range scans over at most an hour of messages.
func CollectAdminStats(ctx context.Context, store *storage.Store, now time.Time) (AdminStats, error) {
	now = now.UTC()
	counts, err := store.Messages.StatusCounts(ctx)
	if err != nil {
		return AdminStats{}, fmt.Errorf("collecting statistics: %w", err)
	}
	current := storage.HourOf(now)
	firstDay := dayStart(now).AddDate(0, 0, -(StatsDays - 1))
	from := min(storage.HourOf(firstDay), storage.HourOf(now.Add(-7*24*time.Hour)))
	hours, err := store.Messages.Hours(ctx, from, math.MaxInt64)
	if err != nil {
		return AdminStats{}, fmt.Errorf("collecting statistics: %w", err)
	}
	base, err := collectStats(ctx, store, now, counts, hours)
	if err != nil {
		return AdminStats{}, err
	}
	s := AdminStats{Stats: base, ByClient: byClient(counts)}
	s.Hourly, s.Daily = hourly(hours, current), daily(hours, firstDay)
	latency, err := store.Messages.Latency(ctx, current-StatsHours+1, current+1)
	if err != nil {
		return AdminStats{}, fmt.Errorf("collecting statistics: %w", err)
	}
	s.Latency = latencyOf(latency, storage.HourStart(current-StatsHours+1))
	return s, nil
}

func dayStart(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// byClient groups the counter rows (ordered by client) per client.
func byClient(counts []storage.MessageCount) []ClientMessageStats {
	out := []ClientMessageStats{}
	for _, c := range counts {
		if len(out) == 0 || out[len(out)-1].ClientID != c.ClientID {
			out = append(out, ClientMessageStats{ClientID: c.ClientID})
		}
		last := &out[len(out)-1]
		var m MessageStats
		m.add(c.Status, c.N)
		last.Total += m.Total
		last.Queued += m.Queued
		last.Processing += m.Processing
		last.Retrying += m.Retrying
		last.Delivered += m.Delivered
		last.Failed += m.Failed
	}
	return out
}

// hourly is the StatsHours points ending with hour current.
func hourly(hours []storage.MessageHour, current int64) []StatsPoint {
	first := current - StatsHours + 1
	points := make([]StatsPoint, StatsHours)
	for i := range points {
		points[i].Start = storage.HourStart(first + int64(i))
	}
	for _, h := range hours {
		if h.Hour >= first && h.Hour <= current {
			points[h.Hour-first].add(h)
		}
	}
	return points
}

// daily is the StatsDays points from the UTC day firstDay on.
func daily(hours []storage.MessageHour, firstDay time.Time) []StatsPoint {
	points := make([]StatsPoint, StatsDays)
	for i := range points {
		points[i].Start = firstDay.AddDate(0, 0, i)
	}
	first := storage.HourOf(firstDay)
	for _, h := range hours {
		if day := (h.Hour - first) / 24; h.Hour >= first && day < StatsDays {
			points[day].add(h)
		}
	}
	return points
}

func (p *StatsPoint) add(h storage.MessageHour) {
	p.Registered += h.Registered
	p.Delivered += h.Delivered
	p.Failed += h.Failed
}

func latencyOf(buckets []storage.LatencyCount, since time.Time) DeliveryLatency {
	d := DeliveryLatency{Since: since}
	for _, b := range buckets {
		d.Deliveries += b.N
	}
	if d.Deliveries > 0 {
		p50, p95 := percentile(buckets, d.Deliveries, 0.50), percentile(buckets, d.Deliveries, 0.95)
		d.P50Ms, d.P95Ms = &p50, &p95
	}
	return d
}

// percentile estimates the q-quantile (nearest rank) of a histogram of
// total deliveries, in milliseconds: it finds the bucket holding that rank
// and places the value within the bucket by the rank's position among the
// bucket's deliveries, geometrically, as the buckets are.
func percentile(buckets []storage.LatencyCount, total int64, q float64) float64 {
	rank := int64(math.Ceil(q * float64(total)))
	rank = max(rank, 1)
	var seen int64
	for _, b := range buckets {
		if seen+b.N < rank {
			seen += b.N
			continue
		}
		low, high := storage.LatencyBucketBounds(b.Bucket)
		frac := float64(rank-seen) / float64(b.N)
		var v float64
		if low <= 0 {
			v = frac * float64(high)
		} else {
			v = float64(low) * math.Pow(float64(high)/float64(low), frac)
		}
		return math.Round(v/float64(time.Millisecond)*1000) / 1000
	}
	return 0
}
