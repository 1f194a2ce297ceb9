package devicecrypto

import (
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"sync"
	"sync/atomic"
)

// DefaultKeyBits and DefaultPoolSize are the key pool's defaults.
const (
	DefaultKeyBits  = 2048
	DefaultPoolSize = 32
)

// KeyPool hands out RSA key pairs generated ahead of time. Generating a
// 2048-bit key takes tens of milliseconds and much more for larger keys,
// far too long for the request that opens a session. One goroutine refills
// the pool, so generation takes at most one core; when the pool runs dry
// Get generates the key itself, so the answer is slower but still right.
type KeyPool struct {
	bits    int
	keys    chan *rsa.PrivateKey
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	refills atomic.Uint64
	misses  atomic.Uint64
}

// NewKeyPool starts a pool of size keys of bits bits (the defaults if 0).
// Close stops its refilling.
func NewKeyPool(size, bits int) (*KeyPool, error) {
	if size == 0 {
		size = DefaultPoolSize
	}
	if bits == 0 {
		bits = DefaultKeyBits
	}
	if size < 0 {
		return nil, fmt.Errorf("key pool size must not be negative, got %d", size)
	}
	if bits < 2048 || bits > 8192 || bits%8 != 0 {
		return nil, fmt.Errorf("RSA key bits must be a multiple of 8 from 2048 to 8192, got %d", bits)
	}
	p := &KeyPool{
		bits: bits,
		keys: make(chan *rsa.PrivateKey, size),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go p.refill()
	return p, nil
}

// refill keeps the pool full until Close.
func (p *KeyPool) refill() {
	defer close(p.done)
	if cap(p.keys) == 0 {
		return
	}
	for {
		select {
		case <-p.stop:
			return
		default:
		}
		key, err := rsa.GenerateKey(rand.Reader, p.bits)
		if err != nil {
			// Only a broken random source fails; Get reports it.
			return
		}
		select {
		case p.keys <- key:
			p.refills.Add(1)
		case <-p.stop:
			return
		}
	}
}

// Get returns a key pair that nobody else gets.
func (p *KeyPool) Get() (*rsa.PrivateKey, error) {
	select {
	case key := <-p.keys:
		return key, nil
	default:
	}
	p.misses.Add(1)
	key, err := rsa.GenerateKey(rand.Reader, p.bits)
	if err != nil {
		return nil, fmt.Errorf("generating an RSA key: %w", err)
	}
	return key, nil
}

// Bits is the size of the pool's keys.
func (p *KeyPool) Bits() int { return p.bits }

// Depth is the number of keys ready now.
func (p *KeyPool) Depth() int { return len(p.keys) }

// Refills is the number of keys the background goroutine has added.
func (p *KeyPool) Refills() uint64 { return p.refills.Load() }

// Misses is the number of keys Get had to generate on the request path.
func (p *KeyPool) Misses() uint64 { return p.misses.Load() }

// Close stops refilling and waits for the refilling goroutine to end (it
// may finish the key it is generating first).
func (p *KeyPool) Close() {
	p.once.Do(func() { close(p.stop) })
	<-p.done
}
