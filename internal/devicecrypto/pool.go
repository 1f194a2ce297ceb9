package devicecrypto

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/msgbroker/caddy-msgbroker/internal/lowprio"
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
//
// On Linux the keys are generated in a child process (this executable
// started again, see startWorker) in the SCHED_IDLE class: the kernel
// gives the gateway's threads the cores first, and the gateway's Go
// scheduler keeps all its slots, which a goroutine busy generating would
// hold. The refilling goroutine only waits for the child and encodes each
// key as a session needs it (PKCS#8 for the session store, the public
// key's PEM for the device), so the request that takes a key only copies
// bytes. If the child cannot start or dies, the goroutine generates the
// keys itself, on its thread of the same class (see package lowprio).
type KeyPool struct {
	bits    int
	keys    chan *PooledKey
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	refills atomic.Uint64
	misses  atomic.Uint64
	// workerPID is the generator process's, 0 while the pool generates
	// in this process.
	workerPID atomic.Int64
}

// PooledKey is a key pair of the pool with its encodings.
type PooledKey struct {
	Private *rsa.PrivateKey
	// PKCS8 is the PKCS#8 DER of Private.
	PKCS8 []byte
	// PublicPEM is the PEM of the public key (SubjectPublicKeyInfo,
	// "PUBLIC KEY"), as devices receive it.
	PublicPEM string
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
		keys: make(chan *PooledKey, size),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go p.refill()
	return p, nil
}

// refill keeps the pool full until Close. It takes the keys from a
// generator process (see startWorker) and, where none can run or it
// fails, generates them itself.
func (p *KeyPool) refill() {
	defer close(p.done)
	if cap(p.keys) == 0 {
		return
	}
	// The goroutine keeps its (lowered) thread for good; the thread ends
	// with it, and the generator process with the thread.
	lowprio.LockIdleThread()
	generate := func() (*PooledKey, error) { return newPooledKey(p.bits) }
	if w, err := startWorker(p.bits); err == nil {
		p.workerPID.Store(int64(w.pid))
		defer w.close()
		generate = func() (*PooledKey, error) {
			key, err := w.next()
			if err != nil {
				// Go on in this process: slower for the gateway,
				// but the pool stays full.
				p.workerPID.Store(0)
				generate = func() (*PooledKey, error) { return newPooledKey(p.bits) }
				return generate()
			}
			return key, nil
		}
	}
	for {
		select {
		case <-p.stop:
			return
		default:
		}
		key, err := generate()
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

// newPooledKey generates a key pair and encodes it.
func newPooledKey(bits int) (*PooledKey, error) {
	priv, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return nil, fmt.Errorf("generating an RSA key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	return encodePooledKey(priv, der)
}

// encodePooledKey adds the public key's PEM to a key pair and its PKCS#8.
func encodePooledKey(priv *rsa.PrivateKey, pkcs8 []byte) (*PooledKey, error) {
	pub, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return nil, err
	}
	return &PooledKey{Private: priv, PKCS8: pkcs8, PublicPEM: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))}, nil
}

// Get returns a key pair that nobody else gets.
func (p *KeyPool) Get() (*PooledKey, error) {
	select {
	case key := <-p.keys:
		return key, nil
	default:
	}
	p.misses.Add(1)
	return newPooledKey(p.bits)
}

// Return gives back a key that Get returned and that was never used or
// shown to anyone (the session it was for could not be created), so the
// next session gets it. If the pool is full the key is dropped.
func (p *KeyPool) Return(key *PooledKey) {
	select {
	case p.keys <- key:
	default:
	}
}

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
