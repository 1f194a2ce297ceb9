package devicecrypto

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// waitFor polls cond for up to 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestKeyPoolGeneratesInAnIdleChildProcess(t *testing.T) {
	p, err := NewKeyPool(1, 2048)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the pool filled", func() bool { return p.Depth() == 1 })
	pid := int(p.workerPID.Load())
	if pid == 0 || pid == os.Getpid() {
		t.Fatalf("generator pid %d, want a child process", pid)
	}
	attr, err := unix.SchedGetAttr(pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	if attr.Policy != unix.SCHED_IDLE {
		t.Errorf("generator policy %d, want SCHED_IDLE (%d)", attr.Policy, unix.SCHED_IDLE)
	}
	key, err := p.Get()
	if err != nil {
		t.Fatal(err)
	}
	if p.Misses() != 0 || key.Private.N.BitLen() != 2048 {
		t.Fatalf("misses %d, %d bits", p.Misses(), key.Private.N.BitLen())
	}
	wrapped, _ := rsa.EncryptOAEP(sha256.New(), rand.Reader, &key.Private.PublicKey, []byte("k"), nil)
	if got, err := rsa.DecryptOAEP(sha256.New(), nil, key.Private, wrapped, nil); err != nil || string(got) != "k" {
		t.Fatalf("the pooled key does not decrypt: %q %v", got, err)
	}
	p.Close()
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("the generator %d outlived Close", pid)
	}
}

func TestKeyPoolGoesOnInProcessWhenTheGeneratorDies(t *testing.T) {
	p, err := NewKeyPool(1, 2048)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	waitFor(t, "the pool filled", func() bool { return p.Depth() == 1 })
	pid := int(p.workerPID.Load())
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Get(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the pool refilled without its generator", func() bool { return p.Depth() == 1 })
	if got := p.workerPID.Load(); got != 0 {
		t.Errorf("worker pid %d after it died, want 0 (generating in process)", got)
	}
}

// frames runs serveKeys on input and returns what it wrote and its status.
func frames(t *testing.T, bits, input string) (*bufio.Reader, int) {
	t.Helper()
	var out bytes.Buffer
	status := serveKeys(bits, strings.NewReader(input), &out)
	return bufio.NewReader(&out), status
}

func TestServeKeysAnswersEachRequestWithOneKey(t *testing.T) {
	out, status := frames(t, "2048", "kk")
	if status != 0 {
		t.Fatalf("status %d at the end of its input, want 0", status)
	}
	w := &worker{bits: 2048, ask: nopCloser{io.Discard}, keys: out}
	for i := range 2 {
		key, err := w.next()
		if err != nil || key.Private.N.BitLen() != 2048 || !strings.HasPrefix(key.PublicPEM, "-----BEGIN PUBLIC KEY-----\n") {
			t.Fatalf("key %d: %v", i, err)
		}
	}
	if _, err := w.next(); err == nil {
		t.Fatal("a third key was read from two requests")
	}
	if _, status := frames(t, "many", "k"); status != 2 {
		t.Errorf("status %d for a bad size, want 2", status)
	}
}

func TestWorkerRefusesWhatIsNotTheKeyItAskedFor(t *testing.T) {
	out, _ := frames(t, "2048", "k")
	if _, err := (&worker{bits: 3072, ask: nopCloser{io.Discard}, keys: out}).next(); err == nil {
		t.Error("a 2048-bit key was taken for a 3072-bit pool")
	}
	for name, frame := range map[string][]byte{
		"empty":    {0, 0, 0, 0},
		"too long": {0, 1, 0, 0},
		"not DER":  append([]byte{0, 0, 0, 3}, "abc"...),
		"cut off":  {0, 0, 0, 9, 1},
	} {
		w := &worker{bits: 2048, ask: nopCloser{io.Discard}, keys: bufio.NewReader(bytes.NewReader(frame))}
		if _, err := w.next(); err == nil {
			t.Errorf("%s frame accepted", name)
		}
	}
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
