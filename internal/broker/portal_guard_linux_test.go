package broker

import (
	"context"
	"syscall"
	"testing"

	"github.com/msgbroker/caddy-msgbroker/internal/lowprio"
)

// bcrypt runs on a thread of lowered priority, so requests of the same
// process are served first while it computes.
func TestHashPoolRunsOnALoweredThread(t *testing.T) {
	p := NewHashPool(HashLimits{Workers: 1, PerSecond: -1})
	prio := -1
	if err := p.do(context.Background(), func() {
		prio, _ = syscall.Getpriority(syscall.PRIO_PROCESS, syscall.Gettid())
	}); err != nil {
		t.Fatal(err)
	}
	// The raw getpriority system call answers 20 - nice.
	if nice := 20 - prio; nice != lowprio.Nice {
		t.Fatalf("bcrypt ran at nice %d, want %d", nice, lowprio.Nice)
	}
}
