//go:build !linux

package devicecrypto

import "errors"

// startWorker is Linux-only (it needs a parent-death signal); elsewhere
// the pool generates keys on its own goroutine.
func startWorker(int) (*worker, error) {
	return nil, errors.New("no key generator process on this system")
}
