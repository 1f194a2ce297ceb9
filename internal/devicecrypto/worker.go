package devicecrypto

import (
	"bufio"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
)

// workerEnv, set to a key size in bits, makes any program that links this
// package a key generator for a KeyPool (see startWorker) instead of
// itself: the gateway starts its own executable again with it.
const workerEnv = "MSGBROKER_DEVICE_KEYGEN_BITS"

// maxWorkerKey bounds a key the worker sends (PKCS#8 of an 8192-bit key
// is about 4.8 KB).
const maxWorkerKey = 16 << 10

func init() {
	if bits := os.Getenv(workerEnv); bits != "" {
		os.Exit(serveKeys(bits, os.Stdin, os.Stdout))
	}
}

// serveKeys is the worker: for each byte read from in it generates a key
// of bits bits and writes its PKCS#8 DER to out, prefixed by its length
// (4 bytes, big-endian). It returns the exit status when in ends.
func serveKeys(bits string, in io.Reader, out io.Writer) int {
	n, err := strconv.Atoi(bits)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s=%q: %v\n", workerEnv, bits, err)
		return 2
	}
	r, w := bufio.NewReader(in), bufio.NewWriter(out)
	for {
		if _, err := r.ReadByte(); err != nil {
			return 0
		}
		key, err := rsa.GenerateKey(rand.Reader, n)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := writeFrame(w, der); err != nil {
			return 1
		}
	}
}

func writeFrame(w *bufio.Writer, der []byte) error {
	if err := binary.Write(w, binary.BigEndian, uint32(len(der))); err != nil {
		return err
	}
	if _, err := w.Write(der); err != nil {
		return err
	}
	return w.Flush()
}

// worker is the parent's end of a key generator process.
type worker struct {
	bits int
	ask  io.WriteCloser
	keys *bufio.Reader
	wait func() error
	pid  int
}

// next asks the worker for a key and reads it: the caller's goroutine
// waits in a read, so it holds none of the Go scheduler's slots while the
// key is generated.
func (w *worker) next() (*PooledKey, error) {
	if _, err := w.ask.Write([]byte{'k'}); err != nil {
		return nil, fmt.Errorf("key generator: %w", err)
	}
	var size uint32
	if err := binary.Read(w.keys, binary.BigEndian, &size); err != nil {
		return nil, fmt.Errorf("key generator: %w", err)
	}
	if size == 0 || size > maxWorkerKey {
		return nil, fmt.Errorf("key generator sent a key of %d bytes", size)
	}
	der := make([]byte, size)
	if _, err := io.ReadFull(w.keys, der); err != nil {
		return nil, fmt.Errorf("key generator: %w", err)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("key generator: %w", err)
	}
	priv, ok := parsed.(*rsa.PrivateKey)
	if !ok || priv.N.BitLen() != w.bits {
		return nil, errors.New("key generator sent a key of the wrong kind or size")
	}
	return encodePooledKey(priv, der)
}

// close ends the worker: it exits when its input ends.
func (w *worker) close() {
	_ = w.ask.Close()
	_ = w.wait()
}
