package devicecrypto

import (
	"runtime"
	"syscall"
)

// refillNice is the nice value of the key pool's refilling thread.
const refillNice = 10

// lowerPriority pins the calling goroutine to its thread and lowers that
// thread's scheduling priority (on Linux, setpriority with a thread id
// applies to that thread only). Key generation keeps a core busy for tens
// of milliseconds per key; at normal priority a request that wakes up on
// a busy machine waits behind it for a whole time slice. Failure (a
// sandbox refusing the call) only leaves the priority as it was.
func lowerPriority() {
	runtime.LockOSThread()
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), refillNice)
}
