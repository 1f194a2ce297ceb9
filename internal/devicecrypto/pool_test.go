package devicecrypto

import (
	"crypto/x509"
	"encoding/pem"
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
	if a.Private.Equal(b.Private) || a.Private.N.BitLen() != 2048 || p.Misses() != 0 || p.Refills() < 2 {
		t.Errorf("two gets from a full pool: equal %v, bits %d, misses %d, refills %d", a.Private.Equal(b.Private), a.Private.N.BitLen(), p.Misses(), p.Refills())
	}
	checkEncodings(t, a)
}

// checkEncodings checks that the pooled encodings are those of the key.
func checkEncodings(t *testing.T, k *PooledKey) {
	t.Helper()
	parsed, err := x509.ParsePKCS8PrivateKey(k.PKCS8)
	if err != nil || !k.Private.Equal(parsed) {
		t.Errorf("PKCS#8 of the pooled key: %v", err)
	}
	block, rest := pem.Decode([]byte(k.PublicPEM))
	if block == nil || block.Type != "PUBLIC KEY" || len(rest) != 0 {
		t.Fatalf("public PEM %q", k.PublicPEM)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil || !k.Private.PublicKey.Equal(pub) {
		t.Errorf("public key of the pooled key: %v", err)
	}
}

func TestKeyPoolTakesBackAnUnusedKey(t *testing.T) {
	p, err := NewKeyPool(1, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	for p.Depth() > 0 {
		_, _ = p.Get()
	}
	k, _ := p.Get()
	p.Return(k)
	again, err := p.Get()
	if err != nil || again != k || p.Depth() != 0 {
		t.Fatalf("the returned key was not handed out again: %v, depth %d", err, p.Depth())
	}
	// Into a full pool, a returned key is dropped.
	p.Return(k)
	other, _ := newPooledKey(2048)
	p.Return(other)
	if got, _ := p.Get(); got != k || p.Depth() != 0 {
		t.Errorf("a full pool took a second key")
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
	checkEncodings(t, k)
}

func TestKeyPoolRefusesWeakKeys(t *testing.T) {
	for _, bits := range []int{1024, 2047, 8200} {
		if _, err := NewKeyPool(1, bits); err == nil {
			t.Errorf("%d bits accepted", bits)
		}
	}
}
