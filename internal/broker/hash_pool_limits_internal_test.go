package broker

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// admissions counts how many logins p admits at one instant, releasing
// each (so only the budget limits) or holding them (so the queue does too).
func admissions(p *HashPool, hold bool) int {
	return admissionsAt(p, hold, time.Unix(1_000_000, 0))
}

func admissionsAt(p *HashPool, hold bool, now time.Time) int {
	n := 0
	for ; n < 1000; n++ {
		release, err := p.admit(now)
		if err != nil {
			break
		}
		if !hold {
			release()
		}
	}
	return n
}

// TestHashPoolDefaults: the budget's burst at one instant (at least
// DefaultHashBurst, or the rate per second when larger), the default rate
// of one hash per second per CPU when PerSecond is 0, no budget with a
// negative PerSecond; and at most Workers + Queue logins admitted at once,
// Workers defaulting to half the CPUs (at least one) and Queue to 64.
func TestHashPoolDefaults(t *testing.T) {
	cpus := runtime.GOMAXPROCS(0)
	for _, tc := range []struct {
		name  string
		l     HashLimits
		burst int
	}{
		{"default budget", HashLimits{}, max(DefaultHashBurst, cpus*DefaultHashesPerSecondPerCPU)},
		{"a rate above the default burst", HashLimits{PerSecond: 25}, 25},
		{"a rate below it", HashLimits{PerSecond: 3}, DefaultHashBurst},
		{"an explicit burst", HashLimits{PerSecond: 3, Burst: 4}, 4},
	} {
		if got := admissions(NewHashPool(tc.l), false); got != tc.burst {
			t.Errorf("%s: %d admitted at once, want a burst of %d", tc.name, got, tc.burst)
		}
	}
	// After its burst, the default budget refills at one hash per second per CPU.
	p := NewHashPool(HashLimits{})
	admissions(p, false)
	if got := admissionsAt(p, false, time.Unix(1_000_001, 0)); got != cpus*DefaultHashesPerSecondPerCPU {
		t.Errorf("default budget: %d admitted a second after its burst, want %d", got, cpus*DefaultHashesPerSecondPerCPU)
	}
	if got := admissions(NewHashPool(HashLimits{PerSecond: -1}), false); got != 1000 {
		t.Errorf("without a budget %d admitted, want no limit", got)
	}

	for _, tc := range []struct {
		l    HashLimits
		want int
	}{
		{HashLimits{PerSecond: -1}, max(1, cpus/2) + 64},
		{HashLimits{PerSecond: -1, Workers: 3, Queue: 5}, 8},
	} {
		p := NewHashPool(tc.l)
		if got := admissions(p, true); got != tc.want {
			t.Errorf("%+v: %d admitted at once, want %d", tc.l, got, tc.want)
		}
		if tc.l.Workers == 0 && cap(p.workers) != max(1, cpus/2) {
			t.Errorf("%d workers, want half of %d CPUs", cap(p.workers), cpus)
		}
	}
}

// TestAddressGuardLimitsAreInclusive: with a limit of one, the first
// failure locks the address; a failure exactly one window after the
// window's first still counts in that window.
func TestAddressGuardLimitsAreInclusive(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	one := &addressGuard{max: 1, window: time.Minute, lockout: time.Hour}
	if err := one.check("192.0.2.1", t0); err != nil {
		t.Fatalf("a fresh address: %v", err)
	}
	if !one.fail("192.0.2.1", t0) {
		t.Fatal("with a limit of 1, the first failure did not lock")
	}
	if err := one.check("192.0.2.1", t0.Add(time.Second)); err == nil {
		t.Fatal("the address locked by its first failure is admitted")
	}

	g := &addressGuard{max: 3, window: time.Minute, lockout: time.Hour}
	for i, at := range []time.Time{t0, t0.Add(time.Minute), t0.Add(time.Minute)} {
		if locked := g.fail("192.0.2.2", at); locked != (i == 2) {
			t.Fatalf("failure %d at +%s: locked %v", i+1, at.Sub(t0), locked)
		}
	}
}

// TestAddressGuardForgetsStaleAddressesAt10000: once it holds 10 000
// addresses, the guard forgets those whose window and lock are over.
func TestAddressGuardForgetsStaleAddressesAt10000(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	g := &addressGuard{max: 3, window: time.Minute, lockout: time.Hour}
	for i := range 10000 {
		g.fail(fmt.Sprintf("10.%d.%d.%d", i>>16, i>>8&0xff, i&0xff), t0)
	}
	if len(g.addrs) != 10000 {
		t.Fatalf("%d addresses remembered, want 10000", len(g.addrs))
	}
	g.fail("192.0.2.1", t0.Add(2*time.Minute))
	if len(g.addrs) != 1 {
		t.Fatalf("%d addresses remembered after a failure two minutes later, want only the new one", len(g.addrs))
	}
}

// TestAddressGuardKeepsAWindowToItsEndWhenPruning: pruning forgets only
// windows that are over; a failure exactly one window after the first
// still counts in it, however many addresses the guard holds.
func TestAddressGuardKeepsAWindowToItsEndWhenPruning(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	g := &addressGuard{max: 3, window: time.Minute, lockout: time.Hour}
	for i := range 10000 {
		g.fail(fmt.Sprintf("10.%d.%d.%d", i>>16, i>>8&0xff, i&0xff), t0)
	}
	g.fail("192.0.2.9", t0)
	g.fail("192.0.2.9", t0)
	if !g.fail("192.0.2.9", t0.Add(time.Minute)) {
		t.Fatal("the third failure within the window (its last instant) did not lock")
	}
}
