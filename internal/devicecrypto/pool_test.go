package devicecrypto

import (
	"testing"
	"time"
)

func TestKeyPoolFillsInTheBackground(t *testing.T) {
	p, err := NewKeyPool(2, 2048)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	deadline := time.Now().Add(20 * time.Second)
	for p.Depth() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("pool depth %d after 20s", p.Depth())
		}
		time.Sleep(10 * time.Millisecond)
	}
	a, err := p.Get()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := p.Get()
	if a.Equal(b) || a.N.BitLen() != 2048 || p.Misses() != 0 || p.Refills() < 2 {
		t.Errorf("two gets from a full pool: equal %v, bits %d, misses %d, refills %d", a.Equal(b), a.N.BitLen(), p.Misses(), p.Refills())
	}
}

func TestKeyPoolGeneratesOnTheRequestPathWhenEmpty(t *testing.T) {
	p, err := NewKeyPool(1, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	// A closed pool no longer refills: every Get must still succeed.
	for p.Depth() > 0 {
		_, _ = p.Get()
	}
	misses := p.Misses()
	k, err := p.Get()
	if err != nil || k == nil || p.Misses() != misses+1 {
		t.Fatalf("get from an empty pool: %v, misses %d → %d", err, misses, p.Misses())
	}
}

func TestKeyPoolRefusesWeakKeys(t *testing.T) {
	for _, bits := range []int{1024, 2047, 8200} {
		if _, err := NewKeyPool(1, bits); err == nil {
			t.Errorf("%d bits accepted", bits)
		}
	}
}
