//go:build !linux

package lowprio

import "runtime"

// LockThread pins the calling goroutine to its thread; where threads have
// no priority of their own that Go can set, that is all it does.
func LockThread() {
	runtime.LockOSThread()
}

// LockIdleThread pins the calling goroutine to its thread; where threads
// have no priority of their own that Go can set, that is all it does.
func LockIdleThread() {
	runtime.LockOSThread()
}
