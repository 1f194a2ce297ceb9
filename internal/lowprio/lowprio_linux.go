package lowprio

import (
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// LockThread pins the calling goroutine to its thread for good and lowers
// that thread's priority to nice Nice (on Linux, setpriority with a thread
// id applies to that thread only). Call it only on a goroutine that keeps
// the thread until it ends. Failure (a sandbox refusing the call) only
// leaves the priority as it was.
func LockThread() {
	runtime.LockOSThread()
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), Nice)
}

// LockIdleThread pins the calling goroutine to its thread for good and
// puts the thread in the SCHED_IDLE class: any other thread that wakes up
// takes the core from it at once, where a nice thread may keep it for the
// rest of a time slice (milliseconds, which a latency percentile sees). On
// a machine kept busy it runs only in the gaps, so use it for work whose
// absence is only slower (the device key pool, whose requests generate a
// key themselves when it runs dry), never for work a request waits for.
// Where the class is refused it falls back to the lowest nice value.
func LockIdleThread() {
	runtime.LockOSThread()
	attr := &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_IDLE}
	if err := unix.SchedSetAttr(0, attr, 0); err != nil {
		_ = syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), 19)
	}
}
