package lowprio

import (
	"runtime"
	"syscall"
)

// LockThread pins the calling goroutine to its thread for good and lowers
// that thread's priority (on Linux, setpriority with a thread id applies
// to that thread only). Call it only on a goroutine that keeps the thread
// until it ends. Failure (a sandbox refusing the call) only leaves the
// priority as it was.
func LockThread() {
	runtime.LockOSThread()
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), Nice)
}
