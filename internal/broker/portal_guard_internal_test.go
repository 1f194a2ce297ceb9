package broker

import (
	"testing"
	"time"
)

func TestTokenBucketRefillsAtItsRateUpToItsBurst(t *testing.T) {
	b := newTokenBucket(2, 3)
	t0 := time.Unix(1_000_000, 0)
	steps := []struct {
		at   time.Duration
		ok   bool
		wait time.Duration
	}{
		{0, true, 0}, {0, true, 0}, {0, true, 0}, // the burst
		{0, false, 500 * time.Millisecond},
		{250 * time.Millisecond, false, 250 * time.Millisecond},
		{500 * time.Millisecond, true, 0},
		{500 * time.Millisecond, false, 500 * time.Millisecond},
		{time.Hour, true, 0}, {time.Hour, true, 0}, {time.Hour, true, 0}, // refilled to the burst, not beyond
		{time.Hour, false, 500 * time.Millisecond},
		// A clock that steps back neither refills nor breaks the bucket.
		{time.Hour - time.Minute, false, 500 * time.Millisecond},
	}
	for i, s := range steps {
		wait, ok := b.take(t0.Add(s.at))
		if ok != s.ok || wait != s.wait {
			t.Fatalf("step %d at +%s: take = %s, %v; want %s, %v", i, s.at, wait, ok, s.wait, s.ok)
		}
	}
}
