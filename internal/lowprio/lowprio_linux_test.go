package lowprio

import (
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// niceOf is the nice value of thread tid (the raw getpriority system call
// answers 20 - nice).
func niceOf(t *testing.T, tid int) int {
	t.Helper()
	prio, err := syscall.Getpriority(syscall.PRIO_PROCESS, tid)
	if err != nil {
		t.Fatal(err)
	}
	return 20 - prio
}

// Do runs fn on a thread of nice Nice, leaves the caller's thread as it
// was, and the lowered thread ends with fn, so no other goroutine can
// ever run on it. (Go cannot end the main thread: a locked goroutine that
// happens to run there leaves it parked for good instead, which is as
// safe; the loop runs Do until another thread has been seen to end.)
func TestDoRunsOnALoweredThreadThatEndsWithIt(t *testing.T) {
	callerNice := niceOf(t, syscall.Gettid())
	for range 5 {
		var tid, nice int
		Do(func() {
			tid = syscall.Gettid()
			nice = niceOf(t, tid)
		})
		if nice != Nice {
			t.Fatalf("fn ran at nice %d, want %d", nice, Nice)
		}
		if got := niceOf(t, syscall.Gettid()); got != callerNice {
			t.Fatalf("the caller's thread went from nice %d to %d", callerNice, got)
		}
		if tid == os.Getpid() {
			continue
		}
		deadline := time.Now().Add(10 * time.Second)
		for threadExists(t, tid) {
			if time.Now().After(deadline) {
				t.Fatalf("thread %d still exists after Do returned", tid)
			}
			time.Sleep(time.Millisecond)
		}
		return
	}
	t.Fatal("every Do ran on the main thread")
}

func TestDoRaisesThePanicInTheCaller(t *testing.T) {
	defer func() {
		if r := recover(); r != "boom" {
			t.Fatalf("recovered %v, want boom", r)
		}
	}()
	Do(func() { panic("boom") })
	t.Fatal("Do returned after fn panicked")
}

// threadExists reports whether tid is one of this process's threads.
func threadExists(t *testing.T, tid int) bool {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		if task.Name() == fmt.Sprint(tid) {
			return true
		}
	}
	return false
}

// LockIdleThread puts only its own thread in SCHED_IDLE.
func TestLockIdleThreadPutsTheThreadInTheIdleClass(t *testing.T) {
	policy := func() uint32 {
		attr, err := unix.SchedGetAttr(0, 0)
		if err != nil {
			t.Fatal(err)
		}
		return attr.Policy
	}
	before := policy()
	done := make(chan uint32)
	go func() {
		LockIdleThread()
		done <- policy()
	}()
	if got := <-done; got != unix.SCHED_IDLE {
		t.Fatalf("policy %d, want SCHED_IDLE (%d)", got, unix.SCHED_IDLE)
	}
	if after := policy(); after != before {
		t.Fatalf("the caller's thread went from policy %d to %d", before, after)
	}
}
