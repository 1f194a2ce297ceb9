package devicecrypto

import "testing"

// TestKeyPoolOptions: 0 bits means the default key size, and a negative
// pool size is refused rather than taken as no pool.
func TestKeyPoolOptions(t *testing.T) {
	p, err := NewKeyPool(1, 0)
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	if p.bits != DefaultKeyBits {
		t.Errorf("bits %d, want the default %d", p.bits, DefaultKeyBits)
	}
	if _, err := NewKeyPool(-1, 2048); err == nil {
		t.Error("a negative pool size was accepted")
	}
}
