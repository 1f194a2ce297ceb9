package msgbroker

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A caller gives up at its own deadline while the services are still being
// built, and the build finishes for the callers that wait longer.
func TestServicesWaitHonoursTheCallersContext(t *testing.T) {
	st := newStartup()
	unblock := make(chan struct{})
	built := &Services{}
	builds := 0
	build := func(ctx context.Context, _ *startup) (*Services, error) {
		builds++
		<-unblock
		if ctx.Err() != nil {
			return nil, errors.New("the build ran on the caller's context")
		}
		return built, nil
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if s, err := st.wait(ctx, build); !errors.Is(err, context.DeadlineExceeded) || s != nil {
		t.Fatalf("wait = %v, %v; want the caller's deadline", s, err)
	}
	if st.ready() != nil {
		t.Fatal("ready() reports services before the build finished")
	}
	close(unblock)
	s, err := st.wait(context.Background(), build)
	if err != nil || s != built {
		t.Fatalf("wait after the build = %v, %v; want the built services", s, err)
	}
	if st.ready() != built {
		t.Fatal("ready() does not report the built services")
	}
	if builds != 1 {
		t.Fatalf("built %d times, want once", builds)
	}
}

// A config cleaned up before anything asked for its services never builds
// them afterwards: a late caller gets an error, not nil services.
func TestServicesAreNotBuiltAfterCleanup(t *testing.T) {
	st := newStartup()
	if err := st.release(); err != nil {
		t.Fatal(err)
	}
	s, err := st.wait(context.Background(), func(context.Context, *startup) (*Services, error) {
		t.Fatal("build ran after release")
		return nil, nil
	})
	if err == nil || s != nil {
		t.Fatalf("wait after release = %v, %v; want an error", s, err)
	}
}
