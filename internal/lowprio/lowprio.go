// Package lowprio runs CPU-heavy background work (RSA key generation,
// bcrypt) on OS threads of lowered scheduling priority, so that when the
// cores are busy the kernel runs the threads serving requests first. A
// request that wakes up behind a thread computing for a quarter second
// otherwise waits a whole time slice, which is what a latency percentile
// sees. It knows nothing of Caddy.
package lowprio

// Nice is the nice value of the lowered threads: a nice-0 thread gets
// about ten times their share of a contended core.
const Nice = 10

// Do runs fn on a new goroutine locked to its own thread of lowered
// priority and waits for it. That goroutine ends still locked, so Go ends
// the thread with it and the lowered priority never passes to other
// goroutines. A panic in fn is raised again in the caller.
func Do(fn func()) {
	done := make(chan struct{})
	var panicked any
	go func() {
		defer func() {
			panicked = recover()
			close(done)
		}()
		LockThread()
		fn()
	}()
	<-done
	if panicked != nil {
		panic(panicked)
	}
}
